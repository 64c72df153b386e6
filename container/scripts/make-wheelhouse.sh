#!/usr/bin/env bash
# Download/build every wheel the image needs into ./wheelhouse, so `docker build` installs them with
# --no-index (for hosts where containers cannot reach PyPI). Needs a Python 3.11 with pip on the host,
# the same minor version as the image.
#
# Usage: make-wheelhouse.sh [PYTHON] [cpu|gpu]      (VARIANT=gpu in the environment works too)
#
# One wheelhouse holds one variant; its stamp records which, so switching variants refills it (pip's own
# cache keeps the second switch quick). The variants differ only in torch:
#   cpu  torch's CPU build, from https://download.pytorch.org/whl/cpu (TORCH_INDEX_URL overrides), or a
#        local file that pip's configuration already finds (a `+cpu` wheel in a find-links folder).
#   gpu  torch's CUDA build and its nvidia-* libraries, from PyPI itself (TORCH_INDEX_URL overrides, e.g.
#        https://download.pytorch.org/whl/cu126 for a build that older NVIDIA drivers can run). Local
#        find-links folders and pip's config files are ignored for torch on purpose: a CPU wheel found
#        there with the same version number would otherwise win silently.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${1:-python3}
variant=${2:-${VARIANT:-cpu}}
case $variant in
  cpu | gpu) ;;
  *) echo "error: variant must be cpu or gpu, got '$variant'" >&2; exit 2 ;;
esac
stamp=wheelhouse/.requirements.sha
want="$variant $(sha256sum container/requirements.txt | cut -d' ' -f1) ${TORCH_INDEX_URL:-}"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && ls wheelhouse/*.whl >/dev/null 2>&1; then
  echo "==> wheelhouse up to date ($variant)"
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
mkdir -p wheelhouse
rm -f wheelhouse/*.whl "$stamp"
echo "==> building wheelhouse ($variant)"
torch_pin=$(grep -E '^torch==' container/requirements.txt)
grep -v -E '^torch==' container/requirements.txt >"$venv/rest.txt"
if [[ $variant == gpu ]]; then
  # Only the index may supply torch (see above): no find-links from the environment or pip's config
  # files (PIP_INDEX_URL, PIP_CERT and the like still apply). PyPI's torch wheels are the CUDA build.
  env -u PIP_FIND_LINKS PIP_CONFIG_FILE=/dev/null "$venv/bin/pip" download -q -d wheelhouse --only-binary=:all: \
    ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple} "$torch_pin"
  "$venv/bin/pip" wheel -q -w wheelhouse --find-links wheelhouse -r "$venv/rest.txt"
else
  # torch alone from the CPU index (its dependencies are ordinary PyPI packages); then everything, torch
  # included: the `+cpu` wheel now in wheelhouse/ is the highest 2.13.0 pip can see, so it is the one kept.
  "$venv/bin/pip" download -q -d wheelhouse --only-binary=:all: --no-deps \
    --extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" "$torch_pin"
  "$venv/bin/pip" wheel -q -w wheelhouse --find-links wheelhouse -r container/requirements.txt
fi
# Refuse a wheelhouse of the wrong build before any image is built from it.
torch_wheel=$(ls wheelhouse/torch-*.whl)
if [[ $variant == gpu && $torch_wheel == *+cpu* ]] || [[ $variant == cpu && $torch_wheel != *+cpu* ]]; then
  echo "error: the $variant wheelhouse got $(basename "$torch_wheel")" >&2
  echo "fix: set TORCH_INDEX_URL to an index that serves torch's $variant build" >&2
  exit 1
fi
echo "$want" >"$stamp"
ls wheelhouse/*.whl | wc -l | xargs echo "==> wheels ($variant):"
