#!/usr/bin/env bash
# Installs what the project needs on Debian 12, skipping what is already there.
# Usage: jobs/install-deps.sh [extra-debian-packages...]   (as root or with sudo)
# The ONNX export encodes Debian's onnx.proto (libonnx-dev) with protobuf-c
# (libprotobuf-c-dev, protobuf-c-compiler: protoc-c generates the C code).
# iproute2 (ip netns) and util-linux (unshare): the hosts of tests/test_multihost.sh.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libopenblas-dev libpng-dev zlib1g-dev
      libjpeg62-turbo-dev libturbojpeg0-dev libhdf5-dev hdf5-tools
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev iproute2 util-linux "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
