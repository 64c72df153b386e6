#!/usr/bin/env bash
# The test command: sets up whatever is missing (Docker engine, dev venv, wheelhouse, base image, the
# image under test, SageMaker SDK venvs), then runs pytest with any arguments given.
#
#   bash tests/run.sh                 # everything (unit, integration, container, AWS/moto, SDK local mode)
#   bash tests/run.sh tests/unit -q   # a subset; extra args go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
python=${PYTHON:-python3}

bash container/scripts/ensure-docker.sh

stamp=$venv/.requirements.sha
want=$(cat tests/requirements.txt container/requirements.txt | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "==> dev environment in $venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip wheel setuptools
  "$venv/bin/pip" install -q -r tests/requirements.txt
  echo "$want" >"$stamp"
fi

bash container/scripts/make-wheelhouse.sh "$venv/bin/python"
export BYOC_IMAGE=${BYOC_IMAGE:-byoc:test}
bash container/scripts/build-image.sh "$BYOC_IMAGE" -q
bash container/scripts/make-sdk-venvs.sh /tmp/sdk "$python"

"$venv/bin/ruff" check .
# Who may import whom (the contracts are in pyproject.toml); a broken layer fails the run here.
"$venv/bin/lint-imports"
exec "$venv/bin/python" -m pytest "$@"
