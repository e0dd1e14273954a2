#!/usr/bin/env bash
# Installs the Debian packages the service and its tests need, when missing.
# As root it runs apt-get; otherwise it names what to install and stops.
set -euo pipefail
pkgs=(postgresql-15 postgresql-15-postgis-3 libgdal32 gdal-bin gettext)  # gettext: msgfmt for compilemessages
pkgs+=(pgbouncer)  # tests/test_roles.py runs intake and the task queue through it (transaction pooling)
for flag in "$@"; do
    case "$flag" in
    --browser) pkgs+=(chromium) ;;
    --cluster) pkgs+=(nginx) ;;  # deploy/dev/cluster.sh: the proxy in front of the web nodes
    esac
done

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
    echo "Missing Debian packages: ${missing[*]}" >&2
    echo "Install them as root:  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
