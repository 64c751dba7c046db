#!/usr/bin/env bash
# Installs ONNX Runtime's CPU build for Node into DIR (the test's build dir):
#   npm install --ignore-scripts onnxruntime-node
# (--ignore-scripts skips its install script, which would fetch GPU parts).
# Usage: tests/onnx/install_ort.sh DIR   Environment: ORT_VERSION (default 1.30.0)
# Exits 0 when DIR/node_modules/onnxruntime-node loads, else 1 with the reason.
set -uo pipefail
dir="$(mkdir -p "$1" && cd "$1" && pwd)"
version="${ORT_VERSION:-1.30.0}"
load() { node -e "require(process.argv[1])" "$dir/node_modules/onnxruntime-node" >/dev/null 2>&1; }
for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "$tool not found (jobs/install-deps.sh installs nodejs and npm)" >&2; exit 1; }
done
load && exit 0
if ! npm install --prefix "$dir" --ignore-scripts --no-audit --no-fund --loglevel=error \
      "onnxruntime-node@$version" >"$dir/npm-install.log" 2>&1; then
  echo "npm install onnxruntime-node@$version failed:" >&2
  tail -5 "$dir/npm-install.log" >&2
  exit 1
fi
load || { echo "onnxruntime-node@$version installed in $dir but does not load in node $(node --version)" >&2; exit 1; }
