"""File ▸ Import config…: a LLaMA-Factory or Axolotl training YAML read as an Atelier spec
(engine/config_import.py), its settings listed as mapped or not (and why), and the spec opened in
its kind's wizard to check and launch."""

from __future__ import annotations

import html

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QTextBrowser, QVBoxLayout, QWidget

from engine.config_import import Imported


class ImportConfigDialog(QDialog):
    """What an imported config became; Open in wizard accepts it."""

    def __init__(self, source: str, imported: Imported, parent: QWidget | None = None):
        super().__init__(parent)
        self.imported = imported
        self.setWindowTitle(f"Import {imported.tool} config")
        summary = QLabel(f"<b>{html.escape(source)}</b>: a {imported.tool} config, imported as a "
                         f"<b>{html.escape(imported.spec['kind'])}</b> spec. {len(imported.mapped)} settings carried "
                         f"over, {len(imported.unmapped)} not.")
        summary.setWordWrap(True)
        self.report = QTextBrowser()
        self.report.setHtml(report_html(imported))
        buttons = QDialogButtonBox(QDialogButtonBox.Cancel)
        self.open_button = buttons.addButton("Open in wizard", QDialogButtonBox.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.report, 1)
        layout.addWidget(buttons)
        self.resize(760, 520)


def report_html(imported: Imported) -> str:
    mapped = "".join(f"<tr><td><code>{html.escape(key)}</code></td><td>→ <code>{html.escape(field)}</code></td>"
                     f"<td>{html.escape(str(value))}</td></tr>" for key, field, value in imported.mapped)
    unmapped = "".join(f"<tr><td><code>{html.escape(key)}</code></td><td>{html.escape(why)}</td></tr>"
                       for key, why in imported.unmapped)
    return (f"<h4>Carried over</h4><table cellspacing='4'>{mapped}</table>"
            f"<h4>Not carried over</h4><table cellspacing='4'>{unmapped or '<tr><td>nothing</td></tr>'}</table>")
