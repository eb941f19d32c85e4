#!/usr/bin/env bash
# Adds Atelier to your desktop's application menu (for you only; no root needed).
#
#   packaging/install-desktop.sh [STUDIO]     # STUDIO: the program to start (default: `studio` on PATH)
#   packaging/install-desktop.sh --uninstall
#
# STUDIO is the `studio` command of a pipx or pip install, or build/bundle/atelier/atelier of the
# bundle. The menu entry gets its absolute path (a desktop session's PATH often lacks ~/.local/bin).
# Icons go to $XDG_DATA_HOME/icons/hicolor, the entry to $XDG_DATA_HOME/applications
# (XDG_DATA_HOME defaults to ~/.local/share); xdg-desktop-menu installs it when it is there.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
ENTRY=atelier.desktop

refresh() {
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
    command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" 2>/dev/null || true
}

if [ "${1:-}" = "--uninstall" ]; then
    if command -v xdg-desktop-menu >/dev/null; then
        xdg-desktop-menu uninstall --mode user "$ENTRY" || true
    fi
    rm -f "$DATA/applications/$ENTRY"
    find "$DATA/icons/hicolor" -path '*/apps/atelier.*' -delete 2>/dev/null || true
    refresh
    echo "Removed Atelier from the application menu."
    exit 0
fi

STUDIO=${1:-$(command -v studio || true)}
if [ -z "$STUDIO" ]; then
    echo "install-desktop.sh: no \`studio\` on PATH. Install the studio first (pipx install . or the bundle, see docs/install.md)," >&2
    echo "or pass the program to start: packaging/install-desktop.sh /path/to/studio" >&2
    exit 1
fi
STUDIO=$(realpath "$STUDIO")
if [ ! -x "$STUDIO" ]; then
    echo "install-desktop.sh: $STUDIO is not an executable program." >&2
    exit 1
fi

mkdir -p "$DATA/icons" "$DATA/applications"
cp -r "$HERE/icons/hicolor" "$DATA/icons/"

# Exec and TryExec name the program by its absolute path (in double quotes: it may hold spaces).
case "$STUDIO" in
    *[\"\`\$\\\|\&%]*)
        echo "install-desktop.sh: $STUDIO has a character that a menu entry cannot name safely (\" \` \$ \\ | & %): move it." >&2
        exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s|^Exec=.*|Exec=\"$STUDIO\"|" -e "s|^TryExec=.*|TryExec=$STUDIO|" "$HERE/$ENTRY" > "$tmp/$ENTRY"
if command -v xdg-desktop-menu >/dev/null; then
    xdg-desktop-menu install --mode user --novendor "$tmp/$ENTRY"
else
    cp "$tmp/$ENTRY" "$DATA/applications/$ENTRY"
fi
refresh
echo "Atelier is in the application menu: $DATA/applications/$ENTRY starts $STUDIO"
