"""Light and dark looks for the studio: the Fusion style, a palette and a small stylesheet.

Widgets that draw their own colours (the charts) ask `current()` for the active `Theme`.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QApplication


@dataclass(frozen=True)
class Theme:
    name: str
    window: str
    base: str
    alt_base: str
    text: str
    muted: str
    accent: str
    accent_text: str
    border: str
    sidebar: str
    sidebar_text: str
    error: str
    button: str
    # Chart series colours, in the order curves are added (train, eval, overlays…).
    series: tuple[str, ...]
    chart_bg: str
    chart_fg: str


LIGHT = Theme(
    name="light", window="#f5f6f8", base="#ffffff", alt_base="#f0f2f5", text="#1f2328", muted="#656d76",
    accent="#2f6fed", accent_text="#ffffff", border="#d5d9e0", sidebar="#e9ecf1", sidebar_text="#2b3138",
    error="#c62828", button="#ffffff",
    series=("#2f6fed", "#e8590c", "#2b8a3e", "#9c36b5", "#c2255c", "#1098ad"),
    chart_bg="#ffffff", chart_fg="#3d444d",
)
DARK = Theme(
    name="dark", window="#1e2126", base="#16181c", alt_base="#252930", text="#e6e8eb", muted="#9aa3ad",
    accent="#5b8def", accent_text="#ffffff", border="#353b45", sidebar="#181b20", sidebar_text="#d5d9de",
    error="#ff6b6b", button="#2a2f37",
    series=("#6ea0ff", "#ff922b", "#51cf66", "#cc5de8", "#f06595", "#3bc9db"),
    chart_bg="#16181c", chart_fg="#c9d1d9",
)
THEMES = {"light": LIGHT, "dark": DARK}
_current: Theme = LIGHT


def current() -> Theme:
    return _current


def _palette(t: Theme) -> QPalette:
    p = QPalette()
    roles = {
        QPalette.Window: t.window, QPalette.WindowText: t.text, QPalette.Base: t.base,
        QPalette.AlternateBase: t.alt_base, QPalette.Text: t.text, QPalette.Button: t.button,
        QPalette.ButtonText: t.text, QPalette.Highlight: t.accent, QPalette.HighlightedText: t.accent_text,
        QPalette.ToolTipBase: t.base, QPalette.ToolTipText: t.text, QPalette.PlaceholderText: t.muted,
        QPalette.Link: t.accent, QPalette.BrightText: t.error, QPalette.Mid: t.border,
        QPalette.Light: t.alt_base, QPalette.Midlight: t.alt_base, QPalette.Dark: t.border,
        QPalette.Shadow: t.border,
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.Text, QPalette.WindowText, QPalette.ButtonText):
        p.setColor(QPalette.Disabled, role, QColor(t.muted))
    return p


def _stylesheet(t: Theme) -> str:
    return f"""
    QWidget {{ font-size: 10pt; }}
    QToolTip {{ color: {t.text}; background: {t.base}; border: 1px solid {t.border}; padding: 4px; }}
    QGroupBox {{ border: 1px solid {t.border}; border-radius: 8px; margin-top: 14px; padding: 14px 12px 10px 12px;
                 background: {t.base}; }}
    QGroupBox::title {{ subcontrol-origin: margin; left: 12px; padding: 0 4px; font-weight: 600; color: {t.text}; }}
    QLineEdit, QPlainTextEdit, QTextEdit, QListWidget, QTreeWidget, QTableWidget
        {{ border: 1px solid {t.border}; border-radius: 5px; padding: 3px 6px; background: {t.base}; }}
    QLineEdit:focus, QPlainTextEdit:focus {{ border: 1px solid {t.accent}; }}
    QSpinBox, QDoubleSpinBox, QComboBox {{ min-height: 22px; }}
    QCheckBox::indicator, QGroupBox::indicator {{ width: 14px; height: 14px; border: 1px solid {t.muted};
                                                 border-radius: 3px; background: {t.base}; }}
    QCheckBox::indicator:checked, QGroupBox::indicator:checked {{ background: {t.accent}; border-color: {t.accent};
                                                                 image: url(:/qt-project.org/styles/commonstyle/images/standardbutton-apply-16.png); }}
    QCheckBox::indicator:disabled, QGroupBox::indicator:disabled {{ background: {t.alt_base}; }}
    QPushButton {{ border: 1px solid {t.border}; border-radius: 6px; padding: 5px 14px; background: {t.button}; }}
    QPushButton:hover {{ border-color: {t.accent}; }}
    QPushButton:disabled {{ color: {t.muted}; }}
    QPushButton#primary {{ background: {t.accent}; color: {t.accent_text}; border-color: {t.accent}; font-weight: 600; }}
    QPushButton#primary:disabled {{ background: {t.border}; border-color: {t.border}; color: {t.muted}; }}
    QListWidget#sidebar {{ background: {t.sidebar}; border: none; border-right: 1px solid {t.border};
                           border-radius: 0; padding: 8px 6px; outline: 0; font-size: 11pt; }}
    QListWidget#sidebar::item {{ padding: 9px 10px; border-radius: 6px; color: {t.sidebar_text}; margin: 1px 0; }}
    QListWidget#sidebar::item:selected {{ background: {t.accent}; color: {t.accent_text}; }}
    QListWidget#sidebar::item:hover:!selected {{ background: {t.alt_base}; }}
    QLabel#pageTitle {{ font-size: 17pt; font-weight: 600; }}
    QLabel#subtitle, QLabel#help {{ color: {t.muted}; }}
    QLabel#help {{ font-size: 9pt; }}
    QLabel#fieldError {{ color: {t.error}; font-size: 9pt; }}
    QLabel#stat {{ font-size: 12pt; font-weight: 600; }}
    QLabel#badge {{ border-radius: 9px; padding: 2px 10px; background: {t.alt_base}; border: 1px solid {t.border}; }}
    QToolButton#advanced {{ border: none; color: {t.accent}; font-weight: 600; padding: 4px 0; }}
    QTabWidget::pane {{ border: 1px solid {t.border}; border-radius: 6px; top: -1px; background: {t.base}; }}
    QTabBar::tab {{ padding: 6px 14px; border: 1px solid transparent; border-bottom: none; }}
    QTabBar::tab:selected {{ border-color: {t.border}; background: {t.base}; border-top-left-radius: 6px;
                             border-top-right-radius: 6px; }}
    QProgressBar {{ border: 1px solid {t.border}; border-radius: 5px; text-align: center; background: {t.alt_base};
                    min-height: 14px; max-height: 16px; }}
    QProgressBar::chunk {{ background: {t.accent}; border-radius: 4px; }}
    QDockWidget::title {{ padding: 6px 10px; background: {t.alt_base}; font-weight: 600; }}
    QScrollArea {{ border: none; background: transparent; }}
    QScrollArea > QWidget > QWidget#scrollBody {{ background: transparent; }}
    QFrame#methodCard {{ border: 1px solid {t.border}; border-radius: 8px; background: {t.base}; padding: 1px; }}
    QFrame#methodCard:hover, QFrame#methodCard:focus {{ border-color: {t.accent}; }}
    QFrame#methodCard[selected="true"] {{ border: 2px solid {t.accent}; background: {t.alt_base}; padding: 0; }}
    QFrame#answerCard {{ border: 1px solid {t.border}; border-radius: 8px; background: {t.base}; }}
    QFrame#answerCard QTextBrowser {{ border: none; }}
    QLabel#rankBadge {{ background: {t.accent}; color: {t.accent_text}; border-radius: 4px; padding: 1px 8px;
                        font-weight: 600; }}
    QPushButton#verdict {{ font-weight: 600; }}
    QFrame#answerCard QTextBrowser, QTextBrowser#promptView {{ font-size: 11pt; }}
    QLabel#emptyState {{ color: {t.muted}; font-size: 11pt; }}
    QListWidget#steps {{ border: none; background: transparent; font-size: 10.5pt; outline: 0; }}
    QListWidget#steps::item {{ padding: 7px 8px; border-radius: 6px; }}
    QListWidget#steps::item:selected {{ background: {t.alt_base}; color: {t.accent}; font-weight: 600; }}
    """


def apply(app: QApplication, name: str = "light") -> Theme:
    """Switch the whole application to the `light` or `dark` look."""
    global _current
    theme = THEMES[name]
    _current = theme
    app.setStyle("Fusion")
    app.setPalette(_palette(theme))
    font = QFont(app.font())
    if font.pointSizeF() < 10:
        font.setPointSizeF(10)
    app.setFont(font)
    app.setStyleSheet(_stylesheet(theme))
    return theme
