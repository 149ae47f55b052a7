#!/bin/sh
# Installs the Debian packages the built-in datasets are made from (munet_serve.builtin): fonts for the rendered
# character sets and Fashion-MNIST. Idempotent and quiet: when dpkg already lists every package it prints nothing
# and exits at once. Uses sudo when not root. Extra packages can be named as arguments.
set -eu

PACKAGES="fonts-noto-core fonts-noto-cjk fonts-freefont-ttf fonts-indic fonts-liberation fonts-hosny-amiri
fonts-kacst fonts-vlgothic fonts-ipafont fonts-noto-ui-core fonts-gfs-didot fonts-dejavu-core fonts-dejavu-extra
fonts-nanum dataset-fashion-mnist $*"

missing=""
for package in $PACKAGES; do
    status=$(dpkg-query -W -f '${db:Status-Abbrev}' "$package" 2>/dev/null || true)
    case "$status" in
        ii*) ;;
        *) missing="$missing $package" ;;
    esac
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system-packages: apt-get not found (not a Debian/Ubuntu system?)." >&2
    echo "Install these packages (or their fonts) with your system's package manager:$missing" >&2
    echo "The built-in datasets that need them raise MissingDataError; the rest work without them." >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    run=""
elif command -v sudo >/dev/null 2>&1; then
    run="sudo"
else
    echo "install-system-packages: not root and no sudo; as root run: apt-get install$missing" >&2
    exit 1
fi

echo "install-system-packages: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # word splitting of the package list is intended
$run apt-get update -qq
# shellcheck disable=SC2086
$run apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "install-system-packages: done"
