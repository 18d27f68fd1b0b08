"""Adapter that makes a jammy_flows density behave like the other galaxysim flows.

jammy_flows (Glüsenkamp, arXiv:2008.05825; https://github.com/thoglu/jammy_flows)
offers Gaussianization flows (Meng et al. 2020, arXiv:2003.01941; layer
letter ``"g"``) and affine / multivariate-normal layers (``"t"``) on Euclidean
spaces. It is an optional dependency (the ``jammy`` extra, installed from its
git repository). Three of its habits shape this adapter:

* it needs float64 (float32 gives NaN in the Gaussianization layers), so the
  whole adapter runs in double precision;
* its Gaussianization layers are initialised from the data
  (:meth:`JammyFlow.initialize`), which matters far more than in other flows;
* its ``pdf`` object holds local functions and does not pickle, so
  :class:`JammyFlow` pickles the constructor arguments plus the state dict
  and rebuilds the ``pdf`` on loading.
"""

from __future__ import annotations

import contextlib
import io
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .base import DensityFlow, Standardization, standard_normal_log_prob

__all__ = ["JAMMY_FLOWS", "JammyFlow", "import_jammy_flows", "jammy_layers"]

#: Flow names accepted for the jammy backend, and the layer letter each repeats.
JAMMY_FLOWS = {"gaussianization": "g", "affine": "t"}

_INSTALL_HINT = (
    'backend="jammy" needs the optional package jammy_flows; install it with '
    '`pip install "galaxysim[jammy]"` '
    "(or `pip install git+https://github.com/thoglu/jammy_flows.git`)."
)


def import_jammy_flows() -> ModuleType:
    """Import jammy_flows, or raise an ImportError that says how to install it.

    Returns
    -------
    module : module
        The ``jammy_flows`` package.

    Raises
    ------
    ImportError
        When jammy_flows is not installed; the message names the ``jammy``
        extra of galaxysim.

    Examples
    --------
    >>> try:
    ...     jf = import_jammy_flows()
    ... except ImportError as error:
    ...     assert "galaxysim[jammy]" in str(error)
    """
    try:
        # jammy_flows prints a notice about an optional plotting package on import.
        with contextlib.redirect_stdout(io.StringIO()):
            import jammy_flows
    except ImportError as error:
        raise ImportError(_INSTALL_HINT) from error
    return jammy_flows


def jammy_layers(flow: str, n_layers: int) -> str:
    """Return the jammy_flows layer string for a flow name.

    Parameters
    ----------
    flow : str
        ``"gaussianization"`` (``"g"`` layers), ``"affine"`` (``"t"`` layers),
        or an explicit string of the letters ``g`` and ``t`` such as ``"gggt"``
        (the layout jammy_flows recommends), used as it is.
    n_layers : int
        Number of layers for a named flow (ignored for an explicit string).

    Returns
    -------
    layers : str
        One letter per layer.

    Raises
    ------
    ValueError
        For any other flow.

    Examples
    --------
    >>> jammy_layers("gaussianization", 3), jammy_layers("gggt", 3)
    ('ggg', 'gggt')
    """
    if not isinstance(flow, str):
        raise TypeError(f"flow must be a string, got {type(flow).__name__}.")
    if flow in JAMMY_FLOWS:
        return JAMMY_FLOWS[flow] * n_layers
    if flow and set(flow) <= set(JAMMY_FLOWS.values()):
        return flow
    raise ValueError(
        f'flow for backend="jammy" must be one of {sorted(JAMMY_FLOWS)} or a string of '
        f"jammy_flows Euclidean layer letters 'g' and 't' (e.g. 'gggt'); got {flow!r}."
    )


def _layer_options(n_features: int) -> dict[str, dict[str, Any]]:
    # The settings jammy_flows' documentation suggests for Euclidean densities:
    # unnormalised Gaussianization mixtures are numerically more stable, and the
    # width bounds were found empirically by its author.
    return {
        "g": {
            "fit_normalization": 0,
            "upper_bound_for_widths": 1.0,
            "lower_bound_for_widths": 0.01,
        },
        "t": {"cov_type": "full" if n_features > 1 else "diagonal"},
    }


def _build_pdf(n_features: int, layers: str) -> torch.nn.Module:
    jammy_flows = import_jammy_flows()
    pdf = jammy_flows.pdf(f"e{n_features}", layers, options_overwrite=_layer_options(n_features))
    return pdf.double()


class JammyFlow(DensityFlow):
    """A jammy_flows Euclidean density on ``(n, d)`` vectors, float64, picklable.

    Parameters
    ----------
    n_features : int
        Dimension ``d``.
    layers : str
        jammy_flows layer letters, e.g. ``"gggg"`` (see :func:`jammy_layers`).
    loc, scale : torch.Tensor of shape (d,), optional
        Fixed standardisation applied first.

    Attributes
    ----------
    pdf : jammy_flows.pdf
        The wrapped density.
    n_latent : int
        Equal to ``n_features``.

    Examples
    --------
    >>> net = JammyFlow(2, "gt")  # doctest: +SKIP
    >>> net.initialize(torch.randn(100, 2, dtype=torch.float64))  # doctest: +SKIP
    >>> net.log_prob(torch.zeros(1, 2, dtype=torch.float64)).dtype  # doctest: +SKIP
    torch.float64
    """

    # A jammy_flows.pdf (a torch Module); jammy_flows has no type information.
    pdf: Any

    def __init__(
        self,
        n_features: int,
        layers: str,
        loc: Tensor | None = None,
        scale: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_latent = int(n_features)
        self.layers = layers
        if loc is None:
            loc = torch.zeros(n_features)
        if scale is None:
            scale = torch.ones(n_features)
        self.standardization = Standardization(loc, scale).double()
        self.pdf = _build_pdf(self.n_latent, layers)

    @torch.no_grad()
    def initialize(self, x: Tensor, seed: int = 0) -> None:
        """Initialise the layers from data, as jammy_flows' ``init_params`` does.

        Parameters
        ----------
        x : torch.Tensor of shape (n, d)
            Training data in its own units (float64).
        seed : int, default=0
            Seed for the starting points of the optimisations inside
            ``init_params``, which draw from numpy's global generator; that
            generator's state is restored afterwards.
        """
        u, _ = self.standardization(x)
        # jammy_flows draws from numpy's legacy global generator; seed it, then restore it.
        saved = np.random.get_state()  # noqa: NPY002
        try:
            np.random.seed(seed)  # noqa: NPY002
            self.pdf.init_params(data=u)
        finally:
            np.random.set_state(saved)  # noqa: NPY002

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density of each sample in the units of ``x`` (nats), shape ``(n,)``."""
        u, log_det = self.standardization(x)
        return self.pdf(u)[0] + log_det

    def latent(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Map data to the Gaussian base space; return ``(z, log |det dz/dx|)``."""
        u, log_det_std = self.standardization(x)
        log_prob, _, z = self.pdf(u)
        return z, log_prob - standard_normal_log_prob(z) + log_det_std

    def inverse(self, z: Tensor) -> Tensor:
        """Map base-space points back to data."""
        start = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
        u, _ = self.pdf.all_layer_forward(z, start, None)
        return self.standardization.inverse(u)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        modules = dict(state["_modules"])
        pdf = modules.pop("pdf")
        state["_modules"] = modules
        state["_pdf_state"] = pdf.state_dict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        pdf_state = state.pop("_pdf_state")
        super().__setstate__(state)
        # Building a jammy pdf draws random initial weights; keep the caller's RNG untouched.
        with torch.random.fork_rng(devices=[]):
            pdf = _build_pdf(self.n_latent, self.layers)
        if pdf_state:
            pdf.to(next(iter(pdf_state.values())).device)
        pdf.load_state_dict(pdf_state)
        self._modules["pdf"] = pdf
