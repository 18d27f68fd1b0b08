"""Model files that cannot run code: tensors in safetensors, everything else in JSON.

A pickle (``joblib.dump``) stores *instructions* to rebuild an object, and
loading one runs them: a model file from someone else can run any program on
your machine. :func:`save_model` writes one ``.safetensors`` file instead: the
arrays and network weights as raw tensors, and the estimator's class,
parameters and small fitted state as JSON in the file's header.
:func:`load_model` reads that JSON as data, creates the estimator from a fixed
list of known classes, builds each network empty from the estimator's
parameters and fills it with the stored weights, checking every name, shape
and dtype. Nothing in the file is executed or unpickled.

Known classes: galaxysim's estimators (:class:`~galaxysim.ContrastiveEmbedder`,
:class:`~galaxysim.GalaxyAugmentation`, :class:`~galaxysim.AutoencoderEmbedder`,
:class:`~galaxysim.FlowDensityEstimator`, :class:`~galaxysim.SimilarityRanker` and its
:class:`~galaxysim.ranking.QueryDiagnostics`, :class:`~galaxysim.ImagePreprocessor`) and
the scikit-learn ones a ranker commonly holds (:class:`~sklearn.pipeline.Pipeline`,
:class:`~sklearn.decomposition.PCA`, :class:`~sklearn.preprocessing.StandardScaler`, and
:class:`~sklearn.frozen.FrozenEstimator`, which holds a pre-trained ``init`` model).
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._atomic import atomic_write
from ._deprecation import upgrade_saved_state
from ._json_input import check_schema, parse_json
from ._limits import check_allocation, check_regular_file
from ._loop import TrainingHistory
from ._network_shape import network_shape
from ._validation import PathLike, check_image_shape
from ._version import __version__

__all__ = ["FORMAT", "FORMAT_VERSION", "ModelFileError", "load_model", "save_model"]

#: Name written into every model file, to tell it apart from other safetensors files.
FORMAT = "galaxysim-model"
#: Version of the layout of the JSON header; a file from a newer layout is refused.
FORMAT_VERSION = 1
# A safetensors header is JSON; one larger than this is not a model of ours.
_MAX_HEADER_BYTES = 64 * 2**20
# The types of the JSON header, and of each estimator in it, before anything reads them.
_HEADER = {
    "format": str,
    "format_version": int,
    "galaxysim_version": (str, type(None)),
    "model": (dict, type(None)),
}
_ESTIMATOR = {"estimator": str, "state": (dict, type(None)), "modules": {...: [str]}}


class ModelFileError(ValueError):
    """A model file is not a galaxysim model, is damaged, or does not fit its estimator."""


def _known_classes() -> dict[str, type]:
    """The classes a model file may name, keyed by the name written into the file."""
    from sklearn.decomposition import PCA
    from sklearn.frozen import FrozenEstimator
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from .embedders import AutoencoderEmbedder, ContrastiveEmbedder, GalaxyAugmentation
    from .flows import FlowDensityEstimator
    from .images import ImagePreprocessor
    from .ranking import QueryDiagnostics, SimilarityRanker

    classes = (
        AutoencoderEmbedder,
        ContrastiveEmbedder,
        GalaxyAugmentation,
        FlowDensityEstimator,
        SimilarityRanker,
        QueryDiagnostics,
        ImagePreprocessor,
        Pipeline,
        PCA,
        StandardScaler,
        FrozenEstimator,
    )
    return {cls.__name__: cls for cls in classes}


# ----------------------------------------------------------------------------- writing


class _Encoder:
    """Turns an estimator into JSON-able data, collecting its tensors on the side."""

    def __init__(self) -> None:
        self.tensors: dict[str, torch.Tensor] = {}
        self.known = _known_classes()

    def _tensor(self, where: str, tensor: torch.Tensor) -> str:
        # A copy on the CPU: safetensors refuses tensors that share memory.
        self.tensors[where] = tensor.detach().to("cpu").clone().contiguous()
        return where

    def value(self, value: Any, where: str) -> Any:
        if value is None or isinstance(value, (bool, str)):
            return value
        if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
            return int(value)
        if isinstance(value, (float, np.floating)):
            number = float(value)
            return number if math.isfinite(number) else {"float": repr(number)}
        if isinstance(value, np.bool_):
            return bool(value)
        if isinstance(value, (list, tuple)):
            items = [self.value(item, f"{where}.{i}") for i, item in enumerate(value)]
            return items if isinstance(value, list) else {"tuple": items}
        if isinstance(value, dict):
            return {"dict": self._mapping(value, where)}
        return self._object(value, where)

    def _mapping(self, mapping: dict, where: str) -> dict[str, Any]:
        bad = [key for key in mapping if not isinstance(key, str)]
        if bad:
            raise TypeError(
                f"{where}: a model file stores dicts with str keys only, got {bad[0]!r}."
            )
        return {key: self.value(item, f"{where}.{key}") for key, item in mapping.items()}

    def _object(self, value: Any, where: str) -> Any:
        if isinstance(value, torch.device):
            return {"device": str(value)}
        if isinstance(value, TrainingHistory):
            return {"history": value.as_dict()}
        if isinstance(value, torch.Tensor):
            return {"tensor": self._tensor(where, value)}
        if isinstance(value, np.ndarray):
            return self._array(value, where)
        if type(value).__name__ in self.known and type(value) is self.known[type(value).__name__]:
            return self.estimator(value, where)
        raise TypeError(
            f"{where}: a {type(value).__module__}.{type(value).__name__} cannot be stored in a "
            f"model file; the estimators it can hold are {sorted(self.known)}."
        )

    def _array(self, array: np.ndarray, where: str) -> dict[str, Any]:
        if array.dtype.kind in "biuf":
            if (
                array.ndim == 2
                and not array.flags.c_contiguous
                and array.strides[0] < array.strides[1]
            ):
                # The memory layout decides the order in which BLAS adds up a product:
                # keep it, so that results stay identical to the last bit.
                stored = torch.from_numpy(np.ascontiguousarray(array.T))
                return {"array": self._tensor(where, stored), "order": "F"}
            return {"array": self._tensor(where, torch.from_numpy(np.ascontiguousarray(array)))}
        if array.dtype.kind in "UO" and all(isinstance(item, str) for item in array.flat):
            return {"strings": [str(item) for item in array.flat], "shape": list(array.shape)}
        raise TypeError(
            f"{where}: an array of dtype {array.dtype} cannot be stored in a model file."
        )

    def estimator(self, estimator: Any, where: str) -> dict[str, Any]:
        state, modules = {}, {}
        rebuilt = getattr(type(estimator), "_rebuilt_after_loading", ())
        for key, item in vars(estimator).items():
            if key in rebuilt:
                continue
            if isinstance(item, torch.nn.Module):
                weights = item.state_dict()
                for name, tensor in weights.items():
                    self._tensor(f"{where}.{key}.{name}", tensor)
                modules[key] = list(weights)
            else:
                state[key] = self.value(item, f"{where}.{key}")
        return {"estimator": type(estimator).__name__, "state": state, "modules": modules}


def save_model(estimator: Any, path: PathLike, *, overwrite: bool = False) -> Path:
    """Write a fitted (or unfitted) estimator to a weights-only model file.

    Parameters
    ----------
    estimator : estimator
        A galaxysim estimator, or a scikit-learn Pipeline / PCA /
        StandardScaler, possibly holding other such estimators.
    path : str or path-like
        The file to write, by convention ending in ``.safetensors``. It
        appears complete or not at all (written beside it, then renamed).
    overwrite : bool, default=False
        Replace an existing file; without it an existing file is an error.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    TypeError
        When the estimator holds something a model file cannot store.
    FileExistsError
        When ``path`` exists and ``overwrite`` is False.

    See Also
    --------
    load_model : Read the file back.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from galaxysim import FlowDensityEstimator, load_model, save_model
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> flow = FlowDensityEstimator(max_epochs=2, hidden_features=(8,), device="cpu").fit(X)
    >>> path = save_model(flow, os.path.join(tempfile.mkdtemp(), "flow.safetensors"))
    >>> bool(np.array_equal(load_model(path).score_samples(X), flow.score_samples(X)))
    True
    """
    from safetensors.torch import save

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace it.")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder of path {str(path)!r} does not exist.")
    encoder = _Encoder()
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "galaxysim_version": __version__,
        "model": encoder.value(estimator, "model"),
    }
    payload = save(encoder.tensors, metadata={FORMAT: json.dumps(header)})
    atomic_write(path, payload)
    return path


# ----------------------------------------------------------------------------- reading


class _Decoder:
    """Builds estimators back from the JSON header and the file's tensors."""

    def __init__(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        self.tensors = tensors
        self.used: set[str] = set()
        self.source = source
        self.known = _known_classes()

    def fail(self, message: str) -> ModelFileError:
        return ModelFileError(f"{self.source}: {message}")

    def _take(self, name: Any) -> torch.Tensor:
        if not isinstance(name, str) or name not in self.tensors:
            raise self.fail(f"the header refers to a tensor {name!r} the file does not hold.")
        self.used.add(name)
        return self.tensors[name]

    def value(self, node: Any, where: str) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.value(item, f"{where}.{i}") for i, item in enumerate(node)]
        if not isinstance(node, dict) or not node:
            raise self.fail(f"{where} holds {type(node).__name__} data it cannot read.")
        kind = next(iter(node))
        reader = {
            "tuple": lambda: tuple(self.value(item, where) for item in node["tuple"]),
            "dict": lambda: {k: self.value(v, f"{where}.{k}") for k, v in node["dict"].items()},
            "float": lambda: float(node["float"]),
            "device": lambda: torch.device(node["device"]),
            "history": lambda: TrainingHistory(**node["history"]),
            "tensor": lambda: self._take(node["tensor"]).clone(),
            "array": lambda: self._array(node),
            "strings": lambda: np.array(node["strings"], dtype=object).reshape(node["shape"]),
            "estimator": lambda: self.estimator(node, where),
        }.get(kind)
        if reader is None:
            raise self.fail(f"{where} holds an entry of unknown kind {kind!r}.")
        try:
            return reader()
        except ModelFileError:
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            RuntimeError,
            AttributeError,
            IndexError,
            OverflowError,
            MemoryError,
        ) as exc:
            raise self.fail(f"{where} could not be read ({type(exc).__name__}: {exc}).") from None

    def _array(self, node: dict[str, Any]) -> np.ndarray:
        array = self._take(node["array"]).numpy().copy()
        return array.T if node.get("order") == "F" else array

    def estimator(self, node: dict[str, Any], where: str) -> Any:
        try:
            check_schema(node, _ESTIMATOR, where)
        except ValueError as exc:
            raise self.fail(str(exc)) from None
        cls = self.known.get(node["estimator"])
        if cls is None:
            raise self.fail(
                f"{where} names the class {node['estimator']!r}, which is not one galaxysim "
                f"loads; known classes: {sorted(self.known)}."
            )
        estimator = cls.__new__(cls)
        state = {}
        for key, item in (node.get("state") or {}).items():
            if hasattr(cls, key) or key.startswith("__"):
                # A class attribute (a method, a property, _rebuilt_after_loading) is
                # code's, not the file's: an instance value would override it.
                raise self.fail(f"{where}.{key} names an attribute of the class itself.")
            state[key] = self.value(item, f"{where}.{key}")
        # A file written by galaxysim 0.2 names some parameters as 0.2 did.
        estimator.__dict__.update(upgrade_saved_state(node["estimator"], state))
        # A parameter added after the file was written takes its default value.
        for key, value in _parameter_defaults(cls).items():
            estimator.__dict__.setdefault(key, value)
        self._check_params(estimator, where)
        for key, names in (node.get("modules") or {}).items():
            estimator.__dict__[key] = self._module(estimator, key, names, f"{where}.{key}")
        if getattr(type(estimator), "_rebuilt_after_loading", ()):
            estimator._rebuild_after_loading()
        if hasattr(type(estimator), "_check_training_params"):  # torch estimators: pick the device
            estimator.__setstate__(dict(estimator.__dict__))
        return estimator

    def _check_params(self, estimator: Any, where: str) -> None:
        """The checks ``fit`` runs on the parameters, run on the stored ones; sizes bounded."""
        from .images.io import MAX_IMAGE_PIXELS

        shape = vars(estimator).get("image_shape_")
        if shape is not None:
            try:
                height, width, _ = check_image_shape(shape, "image_shape_")
            except (TypeError, ValueError) as exc:
                raise self.fail(f"{where}: {exc}") from None
            if MAX_IMAGE_PIXELS is not None and height * width > MAX_IMAGE_PIXELS:
                raise self.fail(
                    f"{where}: image_shape_ {shape} is larger than any image galaxysim "
                    f"reads ({MAX_IMAGE_PIXELS:,} pixels)."
                )
        check = getattr(estimator, "_check_params", None)
        if check is None or not all(
            name in vars(estimator) for name in estimator._get_param_names()
        ):
            return
        state = vars(estimator)
        device = state.get("device")
        if "device" in state:
            state["device"] = "cpu"  # the device is chosen again below, from what is present
        try:
            check()
        except (TypeError, ValueError) as exc:
            raise self.fail(f"{where}: {exc}") from None
        finally:
            if "device" in state:
                state["device"] = device

    def _module(self, estimator: Any, key: str, names: list[str], where: str) -> torch.nn.Module:
        if not hasattr(type(estimator), "_empty_module"):
            raise self.fail(f"{where}: a {type(estimator).__name__} holds no network.")
        shape = self._network_shape(estimator, key, names, where)
        # An empty network draws random initial weights: keep the caller's generators as they are.
        with torch.random.fork_rng(devices=[]):
            try:
                module = estimator._empty_module(key)
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                raise self.fail(f"{where}: its network could not be built ({exc}).") from None
        expected = module.state_dict()
        if shape is None:
            self._compare(names, {n: (t.shape, t.dtype) for n, t in expected.items()}, where)
        weights = {name: self._take(f"{where}.{name}") for name in expected}
        module.load_state_dict(weights)
        return module.eval()

    def _network_shape(self, estimator: Any, key: str, names: list[str], where: str) -> Any:
        """Compare the network the parameters describe with the weights, before building it."""
        try:
            shape = network_shape(
                lambda: estimator._empty_module(key), max_parts=8 * len(names) + 256
            )
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self.fail(f"{where}: its network could not be built ({exc}).") from None
        if shape is not None:
            self._compare(names, shape.tensors, where)
            check_allocation(
                shape.n_bytes,
                f"the network {where} of {self.source}",
                "Load it on a larger machine.",
            )
        return shape

    def _compare(self, names: list[str], expected: dict[str, tuple], where: str) -> None:
        if sorted(names) != sorted(expected):
            raise self.fail(
                f"{where}: the stored weights do not match the network its parameters describe "
                f"({len(names)} stored, {len(expected)} expected); the file was altered or "
                "written by another version."
            )
        for name, (shape, dtype) in expected.items():
            tensor = self.tensors.get(f"{where}.{name}")
            if tensor is None:
                raise self.fail(
                    f"the header refers to a tensor {where}.{name!r} the file does not hold."
                )
            if tuple(tensor.shape) != tuple(shape) or tensor.dtype != dtype:
                raise self.fail(
                    f"{where}.{name} has shape {tuple(tensor.shape)} and dtype {tensor.dtype}, "
                    f"but the network needs {tuple(shape)} and {dtype}."
                )


def _parameter_defaults(cls: type) -> dict[str, Any]:
    """The constructor parameters of ``cls`` that have a default, with it."""
    import inspect

    signature = inspect.signature(cls.__init__)
    return {
        name: param.default
        for name, param in signature.parameters.items()
        if name != "self" and param.default is not inspect.Parameter.empty
    }


def _read_header_length(path: Path, size: int) -> None:
    with open(path, "rb") as stream:
        prefix = stream.read(8)
    if len(prefix) < 8:
        raise ModelFileError(f"{str(path)!r} is too short to be a galaxysim model file.")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(_MAX_HEADER_BYTES, size - 8):
        raise ModelFileError(
            f"{str(path)!r} is not a galaxysim model file, or it is truncated: its header "
            f"claims {length} bytes in a file of {size}."
        )


def _open_tensors(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON header and every tensor of a model file, read without running code."""
    from safetensors import SafetensorError, safe_open

    check_regular_file(path, "path")
    _read_header_length(path, path.stat().st_size)
    check_allocation(
        path.stat().st_size, f"the model file {str(path)!r}", "Load it on a larger machine."
    )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ModelFileError(
            f"{str(path)!r} is not a readable model file (a safetensors file), or it is "
            f"damaged: {exc}"
        ) from None
    if FORMAT not in metadata:
        raise ModelFileError(f"{str(path)!r} is a safetensors file, but not a galaxysim model.")
    try:
        header = parse_json(metadata[FORMAT], f"the model description of {str(path)!r}")
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    return header, tensors


def load_model(path: PathLike, *, expected: type | tuple[type, ...] | None = None) -> Any:
    """Read an estimator from a model file written by :func:`save_model`.

    Safe with files from others: the file's text is read as data, only
    known classes are created, and every network weight must match the
    network the estimator's parameters describe. A model trained on a GPU
    loads on a machine without one.

    Parameters
    ----------
    path : str or path-like
        The ``.safetensors`` model file.
    expected : class or tuple of classes, optional
        Refuse the file unless it holds an instance of this class.

    Returns
    -------
    estimator : estimator
        The estimator as it was saved, on the device it was saved from when
        that device is present here, else on the CPU.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ModelFileError
        When the file is not a galaxysim model, is truncated, was altered,
        comes from a newer galaxysim, or holds another estimator than
        ``expected``. A subclass of ValueError.

    See Also
    --------
    save_model : Write a model file.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from galaxysim import AutoencoderEmbedder, load_model, save_model
    >>> X = np.random.default_rng(0).random((20, 8, 8, 3))
    >>> ae = AutoencoderEmbedder(n_components=2, n_stages=1, n_blocks=1, base_channels=2,
    ...                          max_epochs=1, device="cpu", random_state=0).fit(X)
    >>> path = save_model(ae, os.path.join(tempfile.mkdtemp(), "ae.safetensors"))
    >>> loaded = load_model(path, expected=AutoencoderEmbedder)
    >>> bool(np.array_equal(loaded.transform(X), ae.transform(X)))
    True
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Model file {str(path)!r} does not exist.")
    header, tensors = _open_tensors(path)
    source = repr(str(path))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{source} is not a galaxysim model file.")
    try:
        check_schema(header, _HEADER, f"the model description of {source}")
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    version = header["format_version"]
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} has model format version {version!r}; this galaxysim "
            f"({__version__}) reads versions up to {FORMAT_VERSION}. Upgrade galaxysim."
        )
    decoder = _Decoder(tensors, source)
    model = decoder.value(header.get("model"), "model")
    unused = sorted(set(tensors) - decoder.used)
    if unused:
        raise ModelFileError(f"{source} holds tensors no part of the model uses: {unused[:5]}.")
    if expected is not None and not isinstance(model, expected):
        names = expected.__name__ if isinstance(expected, type) else [c.__name__ for c in expected]
        raise ModelFileError(f"{source} holds a {type(model).__name__}, expected {names}.")
    return model
