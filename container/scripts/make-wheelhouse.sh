#!/usr/bin/env bash
# Download/build every wheel the image needs into ./wheelhouse, so `docker build` installs them with
# --no-index (for hosts where containers cannot reach PyPI). Needs a Python 3.11 with pip on the host,
# the same minor version as the image. Usage: make-wheelhouse.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${1:-python3}
stamp=wheelhouse/.requirements.sha
want=$(sha256sum container/requirements.txt | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && ls wheelhouse/*.whl >/dev/null 2>&1; then
  echo "==> wheelhouse up to date"
  exit 0
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [[ $version != 3.11 ]]; then
  echo "error: $python is Python $version; the image runs 3.11, so its wheels must be built with 3.11." >&2
  echo "fix: pass a Python 3.11 interpreter: $0 /path/to/python3.11" >&2
  exit 1
fi
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
# A current pip/wheel: old pips cannot build sagemaker-training (no bdist_wheel).
"$venv/bin/pip" install -q --upgrade pip wheel setuptools
echo "==> building wheelhouse"
"$venv/bin/pip" wheel -q -w wheelhouse -r container/requirements.txt
echo "$want" >"$stamp"
ls wheelhouse/*.whl | wc -l | xargs echo "==> wheels:"
