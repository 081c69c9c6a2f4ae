#!/bin/sh
# Install the built bundle (dist/birdid) for one user, with its menu entry, icons and "Open with":
#   packaging/linux/install.sh            install (or update) into ~/.local
#   packaging/linux/install.sh --remove   take it all away again (models, library and settings stay)
#
# Where: the bundle goes to $BIRDID_HOME (default ~/.local/lib/birdid), the commands to $BIN_DIR
# (default ~/.local/bin), desktop file, icons and metainfo under $XDG_DATA_HOME (default
# ~/.local/share). For everyone on the machine, run as root with BIRDID_HOME=/opt/birdid
# BIN_DIR=/usr/local/bin XDG_DATA_HOME=/usr/local/share.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bundle=${BUNDLE:-$root/dist/birdid}
app_id=org.birdid.Birdid
birdid_home=${BIRDID_HOME:-$HOME/.local/lib/birdid}
bin_dir=${BIN_DIR:-$HOME/.local/bin}
data_home=${XDG_DATA_HOME:-$HOME/.local/share}
icon_sizes="16 24 32 48 64 128 256 512"

refresh_caches() {
    # Menus and file managers pick up new entries without these, only later.
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$data_home/applications" || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1; then
        gtk-update-icon-cache -q -t "$data_home/icons/hicolor" || true
    fi
}

if [ "${1:-}" = --remove ]; then
    rm -rf "$birdid_home"
    rm -f "$bin_dir/birdid" "$bin_dir/birdid-gui" "$data_home/applications/$app_id.desktop" \
        "$data_home/metainfo/$app_id.metainfo.xml" "$data_home/icons/hicolor/scalable/apps/$app_id.svg"
    for size in $icon_sizes; do
        rm -f "$data_home/icons/hicolor/${size}x${size}/apps/$app_id.png"
    done
    refresh_caches
    echo "removed birdid (your models, library and settings are kept)"
    exit 0
fi

if [ ! -x "$bundle/birdid-gui" ]; then
    echo "install.sh: no bundle at $bundle: build it first with packaging/build.sh" >&2
    exit 2
fi

# Copy beside the old install, then swap, so a failed copy never leaves half an app.
mkdir -p "$(dirname "$birdid_home")" "$bin_dir"
rm -rf "$birdid_home.new"
cp -R "$bundle" "$birdid_home.new"
rm -rf "$birdid_home"
mv "$birdid_home.new" "$birdid_home"
ln -sf "$birdid_home/birdid" "$bin_dir/birdid"
ln -sf "$birdid_home/birdid-gui" "$bin_dir/birdid-gui"

# Menus do not always search ~/.local/bin, so the desktop file names the program by full path.
mkdir -p "$data_home/applications" "$data_home/metainfo" "$data_home/icons/hicolor/scalable/apps"
sed -e "s|^Exec=birdid-gui|Exec=$birdid_home/birdid-gui|" -e "s|^TryExec=birdid-gui|TryExec=$birdid_home/birdid-gui|" \
    "$here/$app_id.desktop" > "$data_home/applications/$app_id.desktop"
cp "$here/$app_id.metainfo.xml" "$data_home/metainfo/"
cp "$root/resources/icons/birdid.svg" "$data_home/icons/hicolor/scalable/apps/$app_id.svg"
for size in $icon_sizes; do
    mkdir -p "$data_home/icons/hicolor/${size}x${size}/apps"
    cp "$root/resources/icons/png/birdid-$size.png" "$data_home/icons/hicolor/${size}x${size}/apps/$app_id.png"
done
refresh_caches
echo "installed birdid in $birdid_home; run birdid-gui, or find birdid in the menu"
