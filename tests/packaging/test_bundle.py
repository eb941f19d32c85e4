"""packaging/: the desktop entry, the icons, and the standalone studio that PyInstaller builds.

The bundle test runs packaging/build.sh (about 30 s on 2 cores with its build venv made, 20 s
after; making that venv downloads the studio's dependencies and PyInstaller once), then starts the
built program offscreen with `--screenshot`. ATELIER_TEST_BUNDLE=0 skips it; ATELIER_BUNDLE_DIR
names an existing build (the folder holding `atelier`) to test instead of building.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGING = ROOT / "packaging"
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
# What the studio, and so the bundle, must never load (the engine's stack).
ENGINE_HEAVY = ("torch", "transformers", "peft", "trl", "datasets", "deepspeed", "bitsandbytes", "gradio",
                "accelerate")


def test_desktop_entry_is_valid():
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    out = subprocess.run([validate, str(PACKAGING / "atelier.desktop")], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def _distinct_colours(image, step: int) -> int:
    return len({image.pixel(x, y) for x in range(0, image.width(), step) for y in range(0, image.height(), step)})


def test_icons_are_rendered_at_every_size_from_the_svg():
    from PySide6.QtGui import QImage

    assert (PACKAGING / "icons" / "hicolor" / "scalable" / "apps" / "atelier.svg").read_bytes() == \
        (PACKAGING / "icons" / "atelier.svg").read_bytes()
    for size in ICON_SIZES:
        path = PACKAGING / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "atelier.png"
        image = QImage(str(path))
        assert not image.isNull() and (image.width(), image.height()) == (size, size), path
        assert image.hasAlphaChannel()
        assert image.pixelColor(0, 0).alpha() == 0  # the rounded corner is transparent
        assert image.pixelColor(size // 2, size // 2).alpha() == 255
        assert _distinct_colours(image, 1) > 8, f"{path} looks blank"


def test_install_desktop_puts_the_entry_and_icons_in_the_users_data_folder(tmp_path):
    program = tmp_path / "my apps" / "studio"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    out = subprocess.run([str(PACKAGING / "install-desktop.sh"), str(program)], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    entry = tmp_path / "data" / "applications" / "atelier.desktop"
    lines = entry.read_text().splitlines()
    assert f'Exec="{program}"' in lines and f"TryExec={program}" in lines and "Icon=atelier" in lines
    for size in ICON_SIZES:
        assert (tmp_path / "data" / "icons" / "hicolor" / f"{size}x{size}" / "apps" / "atelier.png").is_file()
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout

    out = subprocess.run([str(PACKAGING / "install-desktop.sh"), "--uninstall"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not entry.exists()
    assert not list((tmp_path / "data" / "icons").rglob("atelier.*"))


def test_install_desktop_without_a_studio_says_what_to_do(tmp_path):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([str(PACKAGING / "install-desktop.sh")], capture_output=True, text=True, env=env,
                         timeout=60)
    assert out.returncode == 1
    assert "no `studio` on PATH" in out.stderr and "docs/install.md" in out.stderr


def test_no_studio_module_imports_the_engine_stack():
    # The bundle collects every studio module; one importing torch at module level would break it.
    script = textwrap.dedent(f"""
        import importlib, json, pkgutil, sys
        import studio
        loaded = {{}}
        for module in pkgutil.walk_packages(studio.__path__, "studio."):
            importlib.import_module(module.name)
            heavy = [m for m in {ENGINE_HEAVY!r} if m in sys.modules]
            if heavy:
                loaded[module.name] = heavy
                break
        print(json.dumps(loaded))
    """)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "{}"


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The folder of a built bundle: ATELIER_BUNDLE_DIR, or packaging/build.sh's output."""
    if os.environ.get("ATELIER_TEST_BUNDLE") == "0":
        pytest.skip("ATELIER_TEST_BUNDLE=0: the bundle is not built")
    if not sys.platform.startswith("linux"):
        pytest.skip("packaging/build.sh builds the Linux bundle")
    if os.environ.get("ATELIER_BUNDLE_DIR"):
        return Path(os.environ["ATELIER_BUNDLE_DIR"])
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PYTHON"] = sys.executable  # the build venv gets the Python version the tests run on
    build = subprocess.run([str(PACKAGING / "build.sh")], capture_output=True, text=True, timeout=900, env=env,
                           cwd=ROOT)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return ROOT / "build" / "bundle" / "atelier"


def _bundle_env(tmp_path: Path) -> dict[str, str]:
    # Nothing of the test's Python may leak in: the bundle must run on its own.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path / "home"), PATH="/usr/bin:/bin")
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


@pytest.mark.long
@pytest.mark.timeout(1200)
def test_the_bundle_holds_no_engine_and_renders_every_page(bundle, tmp_path):
    from PySide6.QtGui import QImage

    program = bundle / "atelier"
    assert os.access(program, os.X_OK)
    internal = bundle / "_internal"
    assert not [p.name for p in internal.iterdir() if p.name.split(".")[0].split("-")[0] in ENGINE_HEAVY]

    shots = tmp_path / "shots"
    # One size: the layout at both is tools/screenshots' test; this one checks the bundle renders at all.
    run = subprocess.run([str(program), "--screenshot", str(shots), "--sizes", "1280x800"], capture_output=True,
                         text=True, timeout=300, env=_bundle_env(tmp_path), cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    names = {p.name for p in shots.glob("*.png")}
    for page in ("data", "tokenizer", "pretrain", "finetune", "label", "rlhf", "playground", "runs"):
        assert {f"{page}-light.png", f"{page}-dark.png"} <= names, page
    assert "monitor-dark.png" in names
    for name in sorted(names):
        image = QImage(str(shots / name))
        assert not image.isNull() and (image.width(), image.height()) == (1280, 800), name
        assert _distinct_colours(image, 8) > 20, f"{name} looks blank"


def test_the_bundle_says_plainly_that_it_has_no_engine(bundle, tmp_path):
    # The studio starts its local engine as `sys.executable -m engine.cli ...`: in the bundle, that is itself.
    run = subprocess.run([str(bundle / "atelier"), "-m", "engine.cli", "--workspace", str(tmp_path), "list"],
                         capture_output=True, text=True, timeout=60, env=_bundle_env(tmp_path))
    assert run.returncode == 1
    assert "holds no engine" in run.stderr and 'pip install "atelier[engine]"' in run.stderr
