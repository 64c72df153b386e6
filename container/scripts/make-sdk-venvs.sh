#!/usr/bin/env bash
# Create the two virtualenvs the SDK local-mode tests drive the image with: the SageMaker Python SDK v2
# and v3 cannot live in one environment (v3 replaces the `sagemaker` package with a namespace of
# sub-packages). Idempotent: a venv whose SDK already imports is left alone.
#
# Usage: make-sdk-venvs.sh [PREFIX] [PYTHON]
#   PREFIX  where the venvs go: PREFIX-v2 and PREFIX-v3   (default: /tmp/sdk -> /tmp/sdk-v2, /tmp/sdk-v3)
#   PYTHON  interpreter to base them on                    (default: python3; 3.9+ for v2, 3.10+ for v3)
# The tests find them through SDK_V2_PYTHON / SDK_V3_PYTHON, defaulting to /tmp/sdk-v2/bin/python and
# /tmp/sdk-v3/bin/python. Local mode also needs Docker Compose (Debian: apt-get install docker-compose).
set -euo pipefail

prefix=${1:-/tmp/sdk}
python=${2:-python3}

make_venv() {
  local dir=$1 spec=$2 probe=$3
  if [[ -x $dir/bin/python ]] && "$dir/bin/python" -c "$probe" >/dev/null 2>&1; then
    echo "==> $dir already has $("$dir/bin/python" -c "$probe")"
    return 0
  fi
  echo "==> creating $dir with $spec (v3 takes a few minutes)"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  # A current pip resolves the SDK's large dependency tree much faster than the one venv ships.
  "$dir/bin/pip" install -q --upgrade pip
  "$dir/bin/pip" install -q "$spec" pillow numpy docker pyyaml
  echo "==> $dir: $("$dir/bin/python" -c "$probe")"
}

probe='import importlib.metadata as m; print("sagemaker", m.version("sagemaker"))'
make_venv "$prefix-v2" 'sagemaker[local]<3' "$probe" &
v2=$!
make_venv "$prefix-v3" 'sagemaker>=3,<4' "$probe" &
v3=$!
status=0
wait "$v2" || { echo "error: could not create $prefix-v2 (see pip output above)" >&2; status=1; }
wait "$v3" || { echo "error: could not create $prefix-v3 (see pip output above)" >&2; status=1; }
exit "$status"
