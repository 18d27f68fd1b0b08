"""Helpers shared by the benchmark scripts: peak-memory readings and the report's frame.

A benchmark child process calls :func:`reset_peak` after its imports, runs one
case, and reads :func:`status_bytes` ``("VmHWM")``: the peak resident memory of
the case alone (Linux /proc; None elsewhere). :func:`print_report` prints a
report with its date, machine and the command that produced it.
"""

from __future__ import annotations

import platform
from datetime import date


def print_report(title: str, report: str, script: str, quick: bool) -> None:
    """Print ``report`` under a dated heading, with the command that reproduces it."""
    command = f"python benchmarks/{script}" + (" --quick" if quick else "")
    print(
        f"# {title} ({date.today().isoformat()}, {platform.machine()}, "
        f"Python {platform.python_version()})\n"
    )
    print(report)
    print(f"\nCommand: `{command}`")


def status_bytes(field: str) -> int | None:
    """A memory figure (``VmRSS``, ``VmHWM``) of this process from /proc, in bytes."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0), so that imports do not count."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False
