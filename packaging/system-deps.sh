#!/usr/bin/env bash
# Install the Debian packages Lightbox needs to run and to be tested, when they are missing.
# As root: installs them (after apt-get update). Otherwise: says which are missing and how to
# install them, and goes on (the Python part still installs into .venv).
set -euo pipefail
packages=(
  python3-venv orthanc orthanc-dicomweb dcmtk dicom3tools xvfb xauth xorriso
  libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1
  libxkbcommon-x11-0 libxcb-shape0 libxcb-randr0 libegl1 libgl1 libfontconfig1 libdbus-1-3
  fonts-dejavu-core
  desktop-file-utils appstream shared-mime-info xdg-utils libglib2.0-bin
)
command -v dpkg-query >/dev/null 2>&1 || { echo "system-deps: not a Debian system; install the equivalents of: ${packages[*]}"; exit 0; }
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "system-deps: missing Debian packages: ${missing[*]}"
  echo "system-deps: install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}"
  if [ "${CI:-}" = "true" ]; then exit 1; fi
fi
