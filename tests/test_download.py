"""Tests for the resumable downloader and fetch_galaxy10_decals, against a local server.

Nothing here touches the network: a tiny HTTP server on 127.0.0.1 serves the
files, and can answer Range requests, ignore them, cut the transfer short or
answer 404, so every path of the downloader runs.
"""

from __future__ import annotations

import hashlib
import io
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import h5py
import numpy as np
import pytest

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

from galaxysim.datasets import galaxy10
from galaxysim.datasets._download import (
    ChecksumMismatchError,
    DownloadError,
    DownloadInProgressError,
    IncompleteDownloadError,
    download_file,
    file_sha256,
    lock_path,
    part_path,
)
from galaxysim.datasets.galaxy10 import (
    GALAXY10_FILENAME,
    fetch_galaxy10_decals,
    load_galaxy10_decals,
)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: _FileServer = self.server  # type: ignore[assignment]
        requested = self.headers.get("Range")
        server.ranges.append(requested)
        if self.path != "/file" or server.missing:
            self.send_error(404, "Not Found")
            return
        data, start = server.payload, 0
        if requested and server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:
            # Promise the whole body but send only part of it, then hang up.
            body, server.cut_after = body[: server.cut_after], None
            self.close_connection = True
        if server.piece is None:
            # Counted before sending: the client may finish before this thread resumes.
            server.bytes_sent += len(body)
            self.wfile.write(body)
            return
        # Slowly: `piece` bytes, then a pause, for at most 5 s or until the client
        # hangs up or the test ends.
        give_up = time.monotonic() + 5
        for start in range(0, len(body), server.piece):
            if time.monotonic() > give_up:
                break
            piece = body[start : start + server.piece]
            server.bytes_sent += len(piece)
            try:
                self.wfile.write(piece)
                self.wfile.flush()
            except OSError:
                break
            if server.stopping.wait(server.pause):
                break
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


class _FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, payload: bytes) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = payload
        self.honour_range = True
        self.cut_after: int | None = None
        self.missing = False
        self.ranges: list[str | None] = []
        self.bytes_sent = 0
        self.piece: int | None = None  # send the body `piece` bytes at a time,
        self.pause = 0.0  # with this many seconds between pieces
        self.stopping = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/file"


def _stop(server, thread) -> None:
    server.stopping.set()
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _serve(payload: bytes):
    server = _FileServer(payload)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    return server, thread


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for scheme in ("http", "https", "all"):
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture
def payload() -> bytes:
    return np.random.default_rng(3).bytes(50_000)


@pytest.fixture
def server(payload):
    server, thread = _serve(payload)
    yield server
    _stop(server, thread)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_success_without_progress_output(server, payload, tmp_path, capsys):
    dest = tmp_path / "sub" / "file.bin"
    result = download_file(
        server.url, dest, sha256=_sha(payload).upper(), verbose=False, chunk_size=4096
    )
    assert result == dest and dest.read_bytes() == payload
    assert not part_path(dest).exists()
    assert server.ranges == [None]
    assert capsys.readouterr().err == ""


def test_download_shows_progress_when_verbose(server, payload, tmp_path, capsys):
    download_file(server.url, tmp_path / "file.bin", sha256=_sha(payload), verbose=True)
    assert "file.bin" in capsys.readouterr().err


def test_resume_requests_only_the_missing_bytes(server, payload, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(payload[:12_345])
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.ranges == ["bytes=12345-"]
    assert server.bytes_sent == len(payload) - 12_345
    assert dest.read_bytes() == payload and not part_path(dest).exists()


def test_server_ignoring_range_restarts_from_scratch(server, payload, tmp_path):
    server.honour_range = False
    dest = tmp_path / "file.bin"
    # Garbage in the .part proves it was replaced, not appended to.
    part_path(dest).write_bytes(b"x" * 1000)
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.ranges == ["bytes=1000-"] and server.bytes_sent == len(payload)
    assert dest.read_bytes() == payload


def test_complete_part_answered_416_is_verified_and_renamed(server, payload, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(payload)
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.bytes_sent == 0 and dest.read_bytes() == payload


def test_part_longer_than_remote_file_is_discarded(server, payload, tmp_path):
    dest = tmp_path / "file.bin"
    part_path(dest).write_bytes(payload + b"stale tail")
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.ranges[-1] is None and dest.read_bytes() == payload


def test_wrong_checksum_leaves_nothing(server, payload, tmp_path):
    dest = tmp_path / "file.bin"
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError, match=f"{_sha(payload)}, expected {wrong}"):
        download_file(server.url, dest, sha256=wrong)
    assert not dest.exists() and not part_path(dest).exists()


def test_truncated_transfer_keeps_part_and_next_call_resumes(server, payload, tmp_path):
    server.cut_after = 20_000
    dest = tmp_path / "file.bin"
    with pytest.raises(IncompleteDownloadError, match="20000 of 50000 bytes.*resume"):
        download_file(server.url, dest, sha256=_sha(payload))
    assert not dest.exists()
    assert part_path(dest).read_bytes() == payload[:20_000]
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.ranges == [None, "bytes=20000-"]
    assert dest.read_bytes() == payload and not part_path(dest).exists()


def test_http_404_is_reported_with_the_url(server, tmp_path):
    server.missing = True
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=re.escape(server.url) + ".*HTTP 404"):
        download_file(server.url, dest)
    assert not dest.exists() and not part_path(dest).exists()


def test_connection_refused_is_reported_with_the_url(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file"
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=f"Could not reach {re.escape(url)}"):
        download_file(url, dest, timeout=5)
    assert not dest.exists() and not part_path(dest).exists()


def test_existing_destination_is_not_overwritten(server, tmp_path):
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        download_file(server.url, dest)
    assert dest.read_bytes() == b"mine" and server.ranges == []


def test_failed_check_deletes_the_part(server, payload, tmp_path):
    dest = tmp_path / "file.bin"

    def reject(path: Path) -> None:
        assert path == part_path(dest) and path.read_bytes() == payload
        raise ValueError("not the expected content")

    with pytest.raises(ValueError, match="not the expected content"):
        download_file(server.url, dest, sha256=_sha(payload), check=reject)
    assert not dest.exists() and not part_path(dest).exists()


@pytest.mark.slow
def test_stalled_transfer_keeps_every_byte_received_and_resumes(server, payload, tmp_path):
    # 5000 bytes, then silence: the old read(1 MiB) waited for 50000 and lost them.
    server.piece, server.pause = 5000, 3.0
    dest = tmp_path / "file.bin"
    started = time.monotonic()
    with pytest.raises(
        IncompleteDownloadError,
        match=r"stalled: no data arrived for timeout=0.5 s after 5000 bytes.*resume",
    ):
        download_file(server.url, dest, sha256=_sha(payload), timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert part_path(dest).read_bytes() == payload[:5000]
    assert not dest.exists() and not lock_path(dest).exists()
    server.piece = None
    download_file(server.url, dest, sha256=_sha(payload))
    assert server.ranges == [None, "bytes=5000-"] and dest.read_bytes() == payload


@pytest.mark.slow
def test_trickle_fetch_ends_within_twice_the_timeout(galaxy10_server, tmp_path):
    server, data = galaxy10_server
    server.piece, server.pause = 1, 0.4  # bytes keep coming, uselessly slowly
    started = time.monotonic()
    with pytest.raises(IncompleteDownloadError, match=r"too slow: only \d+ bytes arrived.*resume"):
        fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), verbose=False, timeout=1)
    assert time.monotonic() - started < 2 * 1
    kept = part_path(tmp_path / GALAXY10_FILENAME).read_bytes()
    assert 2 <= len(kept) <= 6 and kept == data[: len(kept)]


def test_steady_transfer_slower_than_one_window_completes(server, payload, tmp_path):
    # 50 kB in 10 pieces over 0.5 s: several 0.2 s windows, each above min_bytes.
    server.piece, server.pause = 5000, 0.05
    dest = tmp_path / "file.bin"
    download_file(
        server.url, dest, sha256=_sha(payload), timeout=0.2, min_bytes=1000, chunk_size=4096
    )
    assert dest.read_bytes() == payload and server.ranges == [None]


@pytest.mark.parametrize("known_sha", [True, False])
def test_ctrl_c_during_check_keeps_the_complete_part(server, payload, tmp_path, known_sha):
    dest = tmp_path / "file.bin"
    sha256 = _sha(payload) if known_sha else None

    def interrupted(path: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download_file(server.url, dest, sha256=sha256, check=interrupted)
    assert part_path(dest).read_bytes() == payload
    assert not dest.exists() and not lock_path(dest).exists()
    checked: list[Path] = []
    assert download_file(server.url, dest, sha256=sha256, check=checked.append) == dest
    assert checked == [part_path(dest)] and dest.read_bytes() == payload
    assert server.bytes_sent == len(payload)  # not downloaded a second time
    # With a checksum the .part is recognised without asking; without, a 416 says so.
    assert server.ranges == ([None] if known_sha else [None, f"bytes={len(payload)}-"])


@pytest.mark.slow
def test_second_download_into_the_same_file_fails_at_once(server, payload, tmp_path):
    server.piece, server.pause = 5000, 0.1  # about 1 s in all
    dest = tmp_path / "file.bin"
    outcome: list[object] = []

    def first() -> None:
        try:
            outcome.append(download_file(server.url, dest, sha256=_sha(payload), timeout=2))
        except BaseException as exc:  # reported by the assertion below
            outcome.append(exc)

    thread = threading.Thread(target=first)
    thread.start()
    deadline = time.monotonic() + 5
    while not server.bytes_sent and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(
        DownloadInProgressError, match=r"Another download into .*file\.bin.* is running.*call again"
    ):
        download_file(server.url, dest, sha256=_sha(payload), timeout=2)
    assert time.monotonic() - started < 0.5
    thread.join(timeout=10)
    assert outcome == [dest] and dest.read_bytes() == payload
    assert len(server.ranges) == 1 and not lock_path(dest).exists()


@pytest.mark.skipif(fcntl is None, reason="flock locks are POSIX")
def test_lock_of_another_process_blocks_until_it_dies(server, payload, tmp_path):
    dest = tmp_path / "file.bin"
    holder_code = (
        "import fcntl, sys, time\n"
        "f = open(sys.argv[1], 'a')\n"
        "fcntl.flock(f, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(20)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_code, str(lock_path(dest))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(DownloadInProgressError, match="is running"):
            download_file(server.url, dest, sha256=_sha(payload))
    finally:
        holder.kill()
        holder.wait(timeout=5)
        holder.stdout.close()
    # The killed process's lock file stayed, but the OS dropped its lock.
    assert lock_path(dest).exists() and server.ranges == []
    download_file(server.url, dest, sha256=_sha(payload))
    assert dest.read_bytes() == payload and not lock_path(dest).exists()


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"url": "ftp://example.org/x"}, ValueError, "http:// or https://"),
        ({"url": 3}, TypeError, "url must be a string"),
        ({"sha256": "abc"}, ValueError, "64 hexadecimal digits"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"min_bytes": -1}, ValueError, "min_bytes"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, message):
    arguments = {"url": "http://127.0.0.1:9/file", "path": tmp_path / "f", **kwargs}
    with pytest.raises(error, match=message):
        download_file(**arguments)


def test_file_sha256_matches_hashlib(tmp_path, payload):
    path = tmp_path / "f"
    path.write_bytes(payload)
    assert file_sha256(path, chunk_size=1000) == _sha(payload)
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "absent")


# --- fetch_galaxy10_decals ----------------------------------------------------


def _galaxy10_bytes(n: int = 20) -> bytes:
    rng = np.random.default_rng(4)
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle["images"] = rng.integers(0, 256, size=(n, 16, 16, 3), dtype=np.uint8)
        handle["ans"] = np.arange(n) % 10
        for key in ("ra", "dec", "redshift", "pxscale"):
            handle[key] = rng.uniform(size=n)
    return buffer.getvalue()


@pytest.fixture
def galaxy10_server():
    data = _galaxy10_bytes()
    server, thread = _serve(data)
    yield server, data
    _stop(server, thread)


def test_fetch_downloads_verifies_and_skips_a_second_time(galaxy10_server, tmp_path):
    server, data = galaxy10_server
    path = fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), verbose=False)
    assert path == tmp_path / GALAXY10_FILENAME and path.read_bytes() == data
    again = fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), verbose=False)
    assert again == path and len(server.ranges) == 1  # no second request
    assert len(load_galaxy10_decals(path, crop=8).target) == 10


def test_fetch_leaves_an_existing_mismatching_file_untouched(galaxy10_server, tmp_path):
    server, data = galaxy10_server
    path = tmp_path / GALAXY10_FILENAME
    path.write_bytes(b"a different file")
    with pytest.raises(ChecksumMismatchError, match="left untouched.*force=True"):
        fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), verbose=False)
    assert path.read_bytes() == b"a different file" and server.ranges == []
    fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), force=True, verbose=False)
    assert path.read_bytes() == data


def test_fetch_accepts_upper_case_and_rejects_malformed_checksums(galaxy10_server, tmp_path):
    server, data = galaxy10_server
    (tmp_path / GALAXY10_FILENAME).write_bytes(data)
    fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data).upper(), verbose=False)
    with pytest.raises(ValueError, match="64 hexadecimal digits"):
        fetch_galaxy10_decals(tmp_path, url=server.url, sha256="abc", verbose=False)
    assert server.ranges == []


def test_fetch_without_checksum_checks_the_keys_of_an_existing_file(tmp_path):
    (tmp_path / GALAXY10_FILENAME).write_bytes(b"not hdf5")
    with pytest.raises(OSError, match="HDF5"):
        fetch_galaxy10_decals(tmp_path, url="http://127.0.0.1:9/file", sha256=None, verbose=False)


def test_fetch_rejects_a_download_that_is_not_galaxy10(tmp_path):
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        handle["images"] = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    data = buffer.getvalue()
    server, thread = _serve(data)
    try:
        with pytest.raises(ValueError, match=r"lacks the key\(s\) \['ans'"):
            fetch_galaxy10_decals(tmp_path, url=server.url, sha256=_sha(data), verbose=False)
    finally:
        _stop(server, thread)
    assert list(tmp_path.iterdir()) == []


def test_load_with_download_fetches_into_data_home(galaxy10_server, tmp_path, monkeypatch):
    server, data = galaxy10_server
    calls = []
    real_fetch = galaxy10.fetch_galaxy10_decals

    def local_fetch(data_home, **kwargs):
        calls.append(data_home)
        return real_fetch(data_home, url=server.url, sha256=_sha(data), **kwargs)

    monkeypatch.setattr(galaxy10, "fetch_galaxy10_decals", local_fetch)
    home = tmp_path / "home"
    X, _y = load_galaxy10_decals(data_home=home, download=True, crop=8, return_X_y=True)
    assert calls == [home] and X.shape == (10, 8, 8, 3)
    assert (home / GALAXY10_FILENAME).read_bytes() == data
