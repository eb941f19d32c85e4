"""`studio`: the Atelier desktop application.

    studio [--workspace DIR] [--theme light|dark]

Start-up stays light: pyqtgraph (the slowest import) loads when the first run monitor is built,
and torch and friends are never imported by the studio.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_workspace() -> Path:
    return Path(os.environ.get("ATELIER_WORKSPACE") or Path.home() / "atelier").expanduser()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="studio", description="Atelier: a desktop studio for training language models.")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="Folder holding runs/ and store.db (default: $ATELIER_WORKSPACE or ~/atelier).")
    parser.add_argument("--theme", choices=("light", "dark"), default="light", help="Colour theme.")
    return parser.parse_args(argv)


def skip_pandas() -> None:
    # sqlite-utils imports pandas when it is installed (the engine extra brings it) only to map
    # pd.Timestamp to a column type; the studio never stores DataFrames, and pandas (+pyarrow)
    # costs ~0.4 s of start-up. Marking it absent makes sqlite-utils skip it.
    if "pandas" not in sys.modules and not os.environ.get("ATELIER_STUDIO_PANDAS"):
        sys.modules["pandas"] = None  # type: ignore[assignment]


def application():
    """The QApplication with Atelier's names and icon (made once)."""
    skip_pandas()
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Atelier")
    app.setOrganizationName("Atelier")
    app.setApplicationDisplayName("Atelier")
    icon = Path(__file__).resolve().parents[1] / "packaging/icons/hicolor/256x256/apps/atelier.png"
    app.setWindowIcon(QIcon.fromTheme("atelier", QIcon(str(icon))))  # the installed theme's, else the repository's
    return app


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    app = application()
    from studio import theme

    theme.apply(app, args.theme)
    from studio.main_window import MainWindow

    window = MainWindow(args.workspace or default_workspace())
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
