"""The entry point of the bundled studio (packaging/atelier.spec): `studio.app.main`, plus two answers.

The studio starts its local engine as `sys.executable -m engine.cli ...`. In the bundle,
`sys.executable` is this program, which holds the studio but neither Python nor the engine (torch
stays out of the bundle on purpose), so such a call gets a sentence on stderr and exit code 1
instead of the studio's own usage error, whose exit code 2 would read as "the spec is not valid".

`atelier --screenshot DIR` renders every page offscreen with the screenshot tool (tools/screenshots,
which the bundle carries for this): the bundle's test checks with it that the built program shows
every page without an engine.
"""

from __future__ import annotations

import sys

NO_ENGINE = (
    "This Atelier studio is the standalone bundle: it holds no engine (no Python, no PyTorch), so it cannot "
    "run `studio-engine` here. Install the engine in a Python environment on this computer or a GPU box "
    "(`pip install \"atelier[engine]\"`, see docs/install.md) and start the studio from that environment "
    "(its `studio` command) to run jobs locally."
)


def main() -> int:
    if sys.argv[1:3] == ["-m", "engine.cli"]:
        print(f"studio-engine: {NO_ENGINE}", file=sys.stderr)
        return 1
    if sys.argv[1:2] == ["--screenshot"]:
        from tools.screenshots.__main__ import main as screenshots_main

        return screenshots_main(sys.argv[2:])
    from studio.app import main as studio_main

    return studio_main()


if __name__ == "__main__":
    sys.exit(main())
