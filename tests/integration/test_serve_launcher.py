"""`python -m container serve` on the host: bad configuration stops it at once with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.serve_support import make_tiny_model_dir

REPO = Path(__file__).resolve().parents[2]


def run_serve(env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SERVE_", "SM_", "MODEL_SERVER"))}
    full.update(env, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "container", "serve"], env=full, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def test_bad_environment_value_exits_2_naming_the_variable(tmp_path):
    r = run_serve({"SAGEMAKER_MODEL_SERVER_WORKERS": "two", "SM_MODEL_DIR": str(tmp_path)})
    assert r.returncode == 2
    assert "SAGEMAKER_MODEL_SERVER_WORKERS='two' is not an integer" in r.stdout + r.stderr


def test_missing_model_files_exit_2_before_any_worker_starts(tmp_path):
    r = run_serve({"SM_MODEL_DIR": str(tmp_path / "nowhere")})
    assert r.returncode == 2
    assert "lacks ['model.json', 'model.pt']" in r.stdout + r.stderr


def test_unknown_default_accept_exits_2(tmp_path):
    model_dir = make_tiny_model_dir(tmp_path / "model")
    r = run_serve({"SM_MODEL_DIR": str(model_dir), "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"})
    assert r.returncode == 2
    assert "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/csv'" in r.stdout + r.stderr


def test_help_lists_every_variable():
    r = subprocess.run([sys.executable, "-m", "container", "serve", "--help"], capture_output=True, text=True,
                       cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert r.returncode == 0
    for name in ("SAGEMAKER_BIND_TO_PORT", "SAGEMAKER_MODEL_SERVER_WORKERS", "SERVE_MAX_BATCH_SIZE"):
        assert name in r.stdout
