"""Share a labeling queue in the browser: start or stop `studio-engine label-server` and show its address.

Only this computer can open the page unless the user picks the local network; then the engine
requires an access token (generated unless given), which the dialog shows with a Copy button. The
token reaches the server through its environment, never its command line.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox,
    QVBoxLayout, QWidget,
)

from studio.client.label_server import LabelServerProcess, start_label_server

HOSTS = (("127.0.0.1", "This computer only (127.0.0.1)"),
         ("0.0.0.0", "Everyone on my network (0.0.0.0, needs the access token)"))


class ShareDialog(QDialog):
    """Start/stop the web page of one queue; `server` is the running process (or None) when it closes."""

    def __init__(self, engine: Any, store_path: Path | str, queue: str, server: LabelServerProcess | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Share “{queue}” in the browser")
        self.engine, self.store_path, self.queue = engine, Path(store_path), queue
        self.server = server if server is not None and server.running else None
        self.host = QComboBox()
        for value, label in HOSTS:
            self.host.addItem(label, value)
        self.port = QSpinBox()
        self.port.setRange(0, 65535)
        self.port.setValue(7860)
        self.port.setSpecialValueText("any free port")
        self.token = QLineEdit()
        self.token.setPlaceholderText("generated when the page starts (network only)")
        self.token.setEchoMode(QLineEdit.Password)
        copy = QPushButton("Copy token")
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.token.text()))
        token_row = QHBoxLayout()
        token_row.addWidget(self.token, 1)
        token_row.addWidget(copy)
        form = QFormLayout()
        form.addRow("Who can open it", self.host)
        form.addRow("Port", self.port)
        form.addRow("Access token", token_row)
        self.status = QLabel("The page labels the same queue as this window, at the same time; every label is "
                             "saved as it is given. Annotators on the page never see the models' names.")
        self.status.setWordWrap(True)
        self.status.setOpenExternalLinks(True)
        self.status.setObjectName("help")
        self.start_button = QPushButton("Start page")
        self.start_button.setObjectName("primary")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop page")
        self.stop_button.clicked.connect(self.stop)
        buttons = QDialogButtonBox(QDialogButtonBox.Close)
        buttons.rejected.connect(self.reject)
        buttons.addButton(self.start_button, QDialogButtonBox.ActionRole)
        buttons.addButton(self.stop_button, QDialogButtonBox.ActionRole)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(560, 260)
        if self.server is not None:
            self._follow(self.server)
            if self.server.url:
                self._ready(self.server.url)
        self._enable()

    def _enable(self) -> None:
        running = self.server is not None and self.server.running
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for widget in (self.host, self.port):
            widget.setEnabled(not running)

    def start(self) -> None:
        token = self.token.text().strip() or None
        self.status.setText("Starting the page…")
        self.server = start_label_server(self.engine, str(self.store_path), self.queue, self.host.currentData(),
                                         self.port.value(), token)
        self._follow(self.server)
        self._enable()

    def _follow(self, server: LabelServerProcess) -> None:
        server.ready.connect(self._ready)
        server.ended.connect(self._ended)

    def _ready(self, url: str) -> None:
        if self.server is not None and self.server.token:
            self.token.setText(self.server.token)
        bound = "<br>".join(html.escape(line) for line in (self.server.lines if self.server else [])[-2:])
        self.status.setText(f'<p>Serving at <a href="{html.escape(url)}">{html.escape(url)}</a></p><p>{bound}</p>')
        self._enable()

    def _ended(self, message: str) -> None:
        self.status.setText(html.escape(message).replace("\n", "<br>") if message else "The page is stopped.")
        self.server = None
        self._enable()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
