#!/usr/bin/env bash
# Unpacks `nginx` and `promtool` from Debian's packages into DEST (default .venv/opt) without
# installing them system-wide, for the deeper checks of deploy/check.py (`nginx -t` and a
# routing test, `promtool check config`). Best effort: on a machine without apt it says so
# and exits 0, and the checks fall back to structural ones.
set -uo pipefail
dest="${1:-.venv/opt}"
mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

have() { [ -x "$dest/usr/sbin/$1" ] || [ -x "$dest/usr/bin/$1" ] || command -v "$1" >/dev/null 2>&1; }
want=()
have nginx || want+=(nginx)
have promtool || want+=(prometheus)
[ ${#want[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
  echo "fetch-debian-tools: no apt here; skipping ${want[*]} (checks fall back to structural ones)"
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 777 "$work" # apt downloads as its unprivileged user
download() { (cd "$work" && apt-get download -qq "$@" >/dev/null 2>&1); }
if ! download "${want[@]}"; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null 2>&1 || true
  fi
  download "${want[@]}" || {
    echo "fetch-debian-tools: could not download ${want[*]}; skipping (structural checks only)"
    exit 0
  }
fi
for deb in "$work"/*.deb; do
  dpkg -x "$deb" "$work/root"
done
[ -x "$work/root/usr/sbin/nginx" ] && install -D -m 0755 "$work/root/usr/sbin/nginx" "$dest/usr/sbin/nginx"
[ -x "$work/root/usr/bin/promtool" ] && install -D -m 0755 "$work/root/usr/bin/promtool" "$dest/usr/bin/promtool"
echo "fetch-debian-tools: unpacked ${want[*]} into $dest"
