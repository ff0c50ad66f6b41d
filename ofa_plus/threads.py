"""How many CPU threads inference uses (the pipeline, ``ofa-plus run``, ``ofa-plus evaluate``).

torch starts one intra-op thread per core. When other processes keep some of those cores busy,
the threads wait on each other at every operator and a small model's call gets many times slower
than on one thread (``python -m benchmarks.threads`` measures it). So by default inference uses
the cores that other processes leave free (from the 1-minute load average), at least one, unless
the user chose: ``OMP_NUM_THREADS`` (or ``MKL_NUM_THREADS``) in the environment, a
``torch.set_num_threads`` call after importing ofa_plus, or an explicit ``num_threads``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator

import torch

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREADS_HELP = (
    "CPU threads for inference: a count, or auto = the cores other processes leave free "
    "(default; OMP_NUM_THREADS, when set, is kept)"
)
_AT_IMPORT = torch.get_num_threads()  # a different count later means the user called set_num_threads


def free_cores() -> int:
    """The cores other processes leave free (1-minute load average), at least one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def user_chose_threads() -> bool:
    return any(os.environ.get(v) for v in THREAD_VARIABLES) or torch.get_num_threads() != _AT_IMPORT


def resolve_threads(num_threads: int | str | None) -> int | None:
    """``num_threads`` as a count: an int as given; ``None`` or ``"auto"``: `free_cores`, or None
    (leave torch as it is) when the user chose a count outside ofa_plus."""
    if num_threads in (None, "auto"):
        return None if user_chose_threads() else free_cores()
    count = int(num_threads)
    if count < 1:
        raise ValueError(f"num_threads must be a positive count or 'auto', got {num_threads!r}")
    return count


def threads_option(value: str) -> int | str:
    """argparse type of ``--num-threads``: a positive count or ``auto``."""
    if value == "auto":
        return value
    try:
        return resolve_threads(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive count or auto, got {value!r}") from err


@contextlib.contextmanager
def inference_threads(num_threads: int | str | None = None) -> Iterator[None]:
    """Within the block torch uses `resolve_threads` (num_threads) intra-op threads; restored after."""
    count = resolve_threads(num_threads)
    before = torch.get_num_threads()
    if count is None or count == before:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
