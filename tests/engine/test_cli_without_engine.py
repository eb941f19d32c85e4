"""A studio-only install (pipx, the bundle) has no torch: commands that need the engine say so and how
to install it; the ones that do not (validate, schema) still work."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The engine's CLI in a Python where torch cannot be imported, as in a GUI-only install.
WITHOUT_TORCH = ("import sys; sys.modules['torch'] = None; from engine.cli import main; "
                 "sys.exit(main(sys.argv[1:]))")


def cli(*args: str, workspace: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, "--workspace", str(workspace), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_commands_that_need_the_engine_name_what_is_missing_and_how_to_install_it(tmp_path):
    spec = ROOT / "resources" / "specs" / "pretrain.yaml"
    for args in (("run", str(spec)), ("doctor",), ("serve",)):
        result = cli(*args, workspace=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        assert "torch is not installed" in result.stderr and 'pip install "atelier[engine]"' in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and not (tmp_path / "runs").exists()


def test_validate_and_schema_work_without_the_engine(tmp_path):
    assert cli("validate", str(ROOT / "resources" / "specs" / "finetune.yaml"), workspace=tmp_path).returncode == 0
    assert '"kind"' in cli("schema", "pretrain", workspace=tmp_path).stdout
