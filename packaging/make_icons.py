"""Render the application icon, packaging/icons/atelier.svg, into a freedesktop `hicolor` icon tree.

    python packaging/make_icons.py

writes packaging/icons/hicolor/<N>x<N>/apps/atelier.png for every size in SIZES and a copy of the
SVG as hicolor/scalable/apps/atelier.svg, so that installing the icons is one copy
(`cp -r packaging/icons/hicolor ~/.local/share/icons/`, which packaging/install-desktop.sh does).
Rerun it after editing the SVG and commit the PNGs: the bundle, the desktop entry and the studio's
window icon use them, and none of those needs Qt's SVG support at run time.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent / "icons"
SOURCE = ICONS / "atelier.svg"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def icon_path(size: int, root: Path = ICONS) -> Path:
    """Where the PNG of one size lives in the hicolor tree."""
    return root / "hicolor" / f"{size}x{size}" / "apps" / "atelier.png"


def render_icons(source: Path = SOURCE, root: Path = ICONS, sizes: tuple[int, ...] = SIZES) -> list[Path]:
    """Render `source` at each size with Qt's SVG renderer; returns the files written."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (QPainter needs one)
    renderer = QSvgRenderer(str(source))
    if not renderer.isValid():
        raise SystemExit(f"{source} is not an SVG that Qt can render: fix the file, then rerun.")
    written = []
    for size in sizes:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        renderer.render(painter)
        painter.end()
        target = icon_path(size, root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"Could not write {target}.")
        written.append(target)
    scalable = root / "hicolor" / "scalable" / "apps" / "atelier.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, scalable)
    written.append(scalable)
    return written


def main() -> int:
    for path in render_icons():
        print(path.relative_to(ICONS.parent.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
