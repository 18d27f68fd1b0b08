"""Shared fixtures: the real data folder beside the project, and quiet torch threads."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test where the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def galaxy10_samples(shared_data: Path) -> Path:
    folder = shared_data / "galaxy10_decals_samples"
    if not (folder / "labels.csv").is_file():
        pytest.skip(f"{folder}/labels.csv is absent")
    return folder


@pytest.fixture(scope="session")
def milky_way_png(shared_data: Path) -> Path:
    path = shared_data / "milky_way" / "milky_way_artist_impression_256.png"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test models run faster, and far more steadily on shared cores, on one thread."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
