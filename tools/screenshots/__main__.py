"""`python -m tools.screenshots DIR`: every page of the studio as PNGs in DIR, at a laptop's size and a
large screen's, with the layout check of every shot (exit 1, listing them, when something does not fit)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.screenshots",
                                     description="Render every page of the studio offscreen, in both themes.")
    parser.add_argument("out", type=Path, metavar="DIR", help="folder for the PNGs (docs/screenshots)")
    parser.add_argument("--sizes", default="1280x800,1920x1080",
                        help="window sizes, WIDTHxHEIGHT separated by commas; the first goes into DIR, the others "
                             "into DIR/WIDTHxHEIGHT (default: 1280x800,1920x1080)")
    parser.add_argument("--themes", default="light,dark", help="themes, separated by commas (default: light,dark)")
    args = parser.parse_args(argv)
    from tools.screenshots.pages import render_all

    sizes = tuple(tuple(int(n) for n in size.split("x")) for size in args.sizes.split(","))
    rendered = render_all(args.out, sizes, tuple(args.themes.split(",")))
    print(f"wrote {len(rendered.written)} screenshots to {args.out}")
    if rendered.problems:
        print(f"{len(rendered.problems)} things do not fit:", *rendered.problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
