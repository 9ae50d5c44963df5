"""Command line: ``python -m grader {release,normalize,grade} ...``.

Exit codes: 0 success (for ``grade``: grading ran, whatever the scores), 1 ``release
--check`` found differences, 2 usage or configuration error (bad rubric, missing file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grader.errors import GraderError


def _release(args: argparse.Namespace) -> int:
    from grader.release import check_release, release

    if args.check:
        problems = check_release()
        if problems:
            print("notebooks/ is out of date with solutions/:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("Fix: run `python -m grader release` and commit notebooks/.", file=sys.stderr)
            return 1
        print("notebooks/ matches solutions/")
        return 0
    for path in release():
        print(f"wrote {path}")
    return 0


def _normalize(args: argparse.Namespace) -> int:
    from grader.release import normalize_file

    for path in args.notebooks:
        normalize_file(Path(path))
        print(f"normalized {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m grader", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rel = sub.add_parser("release", help="regenerate notebooks/ from solutions/")
    rel.add_argument("--check", action="store_true",
                     help="exit 1 and name the cells when notebooks/ is out of date")
    rel.set_defaults(func=_release)
    norm = sub.add_parser("normalize", help="fill in cell ids and nbgrader metadata (authors)")
    norm.add_argument("notebooks", nargs="+")
    norm.set_defaults(func=_normalize)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
