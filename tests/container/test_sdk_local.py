"""The image driven by the real SageMaker Python SDK in local mode, v2 and v3, with zero AWS calls.

The two SDK majors cannot share a venv, so each scenario runs as a script under its own interpreter
(container/scripts/make-sdk-venvs.sh creates /tmp/sdk-v2 and /tmp/sdk-v3; override with SDK_V2_PYTHON /
SDK_V3_PYTHON). Scenario: fit on a file:// channel -> model.tar.gz -> local endpoint -> predict a PNG and an
npy batch -> delete -> local batch transform over JSON Lines. Containers and the sagemaker-local network the
SDK leaves behind are removed afterwards.
"""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.container, pytest.mark.sdk, pytest.mark.slow]
SCRIPTS = Path(__file__).parent / "sdk_scripts"
PYTHONS = {"v2": os.environ.get("SDK_V2_PYTHON", "/tmp/sdk-v2/bin/python"),
           "v3": os.environ.get("SDK_V3_PYTHON", "/tmp/sdk-v3/bin/python")}
JSONL_RECORDS = 3


def _png(seed: int, size: int = 32) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from model.normals.synthetic import write_dataset

    root = tmp_path_factory.mktemp("sdk-inputs")
    write_dataset(root / "train", count=8, size=32, seed=3)
    (root / "one.png").write_bytes(_png(0))
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8))
    (root / "batch.npy").write_bytes(buf.getvalue())
    (root / "jsonl").mkdir()
    lines = [json.dumps({"b64": base64.b64encode(_png(10 + i)).decode()}) for i in range(JSONL_RECORDS)]
    (root / "jsonl" / "images.jsonl").write_text("\n".join(lines) + "\n")
    return {"train": root / "train", "png": root / "one.png", "npy": root / "batch.npy", "jsonl": root / "jsonl"}


def _containers() -> set[str]:
    out = subprocess.run(["docker", "ps", "-aq", "--no-trunc", "--filter", "label=com.docker.compose.project"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.fixture
def sdk_cleanup() -> Iterator[None]:
    """Remove the compose containers this test created and the sagemaker-local network."""
    before = _containers()
    yield
    leftover = sorted(_containers() - before)
    if leftover:
        subprocess.run(["docker", "rm", "-f", *leftover], capture_output=True)
    subprocess.run(["docker", "network", "rm", "sagemaker-local"], capture_output=True)


def _offline_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local-mode-dummy",
        "AWS_SECRET_ACCESS_KEY": "local-mode-dummy",
        "AWS_EC2_METADATA_DISABLED": "true",
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        # Any AWS call that slips through fails at once on a closed port instead of reaching the internet.
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "PYTHONUNBUFFERED": "1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }


@pytest.mark.parametrize("sdk", ["v2", "v3"])
def test_sdk_local_mode_fit_deploy_predict_transform(sdk: str, image: str, inputs: dict[str, Path],
                                                     tmp_path: Path, sdk_cleanup: None) -> None:
    python = PYTHONS[sdk]
    if not Path(python).exists():
        pytest.skip(f"SDK {sdk} venv missing at {python}: run container/scripts/make-sdk-venvs.sh")
    started = time.monotonic()
    proc = subprocess.run(
        [python, str(SCRIPTS / f"sdk_{sdk}_scenario.py"), "--image", image, "--work", str(tmp_path / "work"),
         "--train", str(inputs["train"]), "--png", str(inputs["png"]), "--npy", str(inputs["npy"]),
         "--jsonl-dir", str(inputs["jsonl"])],
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    result = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("RESULT "))[7:])
    print(f"SDK {sdk}: {time.monotonic() - started:.0f} s {result}")

    assert result["model_files"], "model.tar.gz is empty"
    assert not any(name.startswith("model/") for name in result["model_files"]), "archive must be flat"
    assert result["png_shape"] == [32, 32, 3]
    assert result["npy_shape"] == [2, 32, 32, 3]
    assert result["transform_outputs"] == ["images.jsonl.out"]
    assert result["transform_lines"] == JSONL_RECORDS
