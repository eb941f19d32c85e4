#!/usr/bin/env bash
# Builds the standalone studio (the GUI only, no engine) with PyInstaller: `make bundle` runs this.
#
#   packaging/build.sh            -> build/bundle/atelier/atelier   (start it; the folder is the app)
#
# The build runs in its own venv (build/bundle-venv, made on first use, remade when pyproject.toml
# changes) holding only the base dependencies of pyproject.toml and the `bundle` extra: no torch
# can slip into the bundle through a library's optional import. The studio's code comes from this
# working tree. Set PYTHON to choose the interpreter the venv is made from (default: python3).
# A second build reuses PyInstaller's analysis in build/bundle-work and is faster.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=build/bundle-venv
STAMP=$VENV/.installed
DIST=build/bundle
WORK=build/bundle-work
start=$(date +%s)

if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ] || [ constraints/cpu.txt -nt "$STAMP" ]; then
    echo "build.sh: making the build venv $VENV (the studio's dependencies and PyInstaller only)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" - > "$VENV/requirements.txt" <<'EOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(project["dependencies"] + project["optional-dependencies"]["bundle"]))
EOF
    # The constraints keep any torch out of reach of a CUDA build; none should be asked for here.
    "$VENV/bin/pip" install -q --disable-pip-version-check -c constraints/cpu.txt -r "$VENV/requirements.txt"
    touch "$STAMP"
fi

# The bundle must stay light: refuse to build from a venv where the engine's stack has appeared.
"$VENV/bin/python" - <<'EOF'
import importlib.util, sys
present = [m for m in ("torch", "transformers", "datasets", "peft", "trl", "gradio", "pandas", "pyarrow")
           if importlib.util.find_spec(m) is not None]
if present:
    sys.exit(f"build.sh: the build venv has {', '.join(present)}; the studio bundle must not. "
             "Remove build/bundle-venv and rerun.")
EOF

"$VENV/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$DIST" --workpath "$WORK" packaging/atelier.spec

# Check the result: engine-heavy packages absent, the executable present.
APP=$DIST/atelier
heavy=$(find "$APP/_internal" -maxdepth 1 \( -name 'torch*' -o -name 'transformers*' -o -name 'datasets*' \
    -o -name 'peft*' -o -name 'trl*' -o -name 'gradio*' -o -name 'pandas*' -o -name 'pyarrow*' \) -print)
if [ -n "$heavy" ]; then
    echo "build.sh: engine-heavy packages ended up in the bundle:" >&2
    echo "$heavy" >&2
    exit 1
fi
test -x "$APP/atelier"
echo "build.sh: built $APP/atelier ($(du -sh "$APP" | cut -f1)) in $(( $(date +%s) - start )) s"
