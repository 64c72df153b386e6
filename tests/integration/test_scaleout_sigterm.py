"""SIGTERM to 2-process torchrun jobs (CPU, gloo): every stop leaves a complete checkpoint and a truthful
failure file, and the resumed job ends with exactly the weights of an uninterrupted one.

One stop lands while rank 0 is inside a step that outlasts torchrun's default 30 s shutdown timeout; ten
more interrupt one job again and again at seeded points (training steps and validation)."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import torch

from container import distributed
from container.worker import outcome_file, read_outcomes
from model.normals.synthetic import write_dataset
from tests.integration.scaleout_support import TINY, free_port, write_spec
from train.checkpoint import CheckpointManager
from train.settings import settings_from_env

REPO = Path(__file__).resolve().parents[2]
HPS = {**TINY, "model_family": "tests.integration.fault_family:FaultySurfaceNormals", "panels": "0"}
SLOW_STEP_S = 40  # longer than torchrun's default shutdown timeout (30 s), well inside SageMaker's 120 s


def _start(root: Path, channel: Path, extra_env: dict[str, str] | None = None,
           hps: dict[str, str] | None = None) -> subprocess.Popen:
    root.mkdir(parents=True, exist_ok=True)
    settings = settings_from_env({"BYOC_PROCESSES_PER_HOST": "2", "BYOC_MASTER_PORT": str(free_port())})
    layout = distributed.plan({"hosts": ["localhost"], "current_host": "localhost"}, pipe=False, settings=settings)
    spec = write_spec(root / "job.json", root, {"train": channel}, {**HPS, **(hps or {})}, ["localhost"], "localhost")
    for rank in range(2):  # PID 1 uses a fresh scratch directory per run
        outcome_file(spec, rank).unlink(missing_ok=True)
    env = distributed.worker_environment(layout)
    env.update(SAGEMAKER_BASE_DIR=str(root / "ml"), PYTHONPATH=str(REPO), BYOC_COLLECTIVE_TIMEOUT_S="90",
               OMP_NUM_THREADS="1", **(extra_env or {}))
    return subprocess.Popen(distributed.torchrun_command(layout, spec), env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _weights(root: Path) -> dict[str, torch.Tensor]:
    return torch.load(root / "model" / "model.pt", weights_only=True)


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sigterm2") / "train"
    write_dataset(root, count=10, size=40, seed=1)
    return root


def test_sigterm_during_a_slow_step_of_two_processes_checkpoints_and_resumes_exactly(tmp_path, channel):
    code, out = _finish(_start(tmp_path / "straight", channel))
    assert code == 0, out[-3000:]

    root = tmp_path / "stopped"
    proc = _start(root, channel, {"SLOW_STEP_AT": "2", "SLOW_STEP_S": str(SLOW_STEP_S)})
    lines: list[str] = []
    seen = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "slow step begins" in line:
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(timeout=180), "".join(lines)[-3000:]
    proc.send_signal(signal.SIGTERM)  # what PID 1 forwards to torchrun on StopTrainingJob / spot reclaim
    proc.wait(timeout=300)
    reader.join(timeout=30)
    log = "".join(lines)
    assert proc.returncode != 0, log[-3000:]
    reason = (root / "ml" / "output" / "failure").read_text()
    assert reason.startswith("Stopped: training stopped by SIGTERM at step 2"), log[-3000:]
    found = CheckpointManager(root / "checkpoints", keep=3).latest()
    assert found is not None and found[1]["step"] == 2, log[-3000:]
    assert not [p for p in (root / "checkpoints").iterdir() if p.name.startswith(".")]

    (root / "ml" / "output" / "failure").unlink()  # PID 1 clears the outcome of the previous run
    code, out = _finish(_start(root, channel))
    assert code == 0, out[-3000:]
    expected, got = _weights(tmp_path / "straight"), _weights(root)
    assert all(torch.equal(expected[k], got[k]) for k in expected)



def test_ten_sigterms_of_one_two_process_job_resume_to_the_uninterrupted_weights(tmp_path, channel):
    hps_epochs = {"epochs": "8"}
    code, out = _finish(_start(tmp_path / "straight", channel, hps=hps_epochs))
    assert code == 0, out[-3000:]
    root, rng, stops = tmp_path / "spot", random.Random(5), []
    failure = root / "ml" / "output" / "failure"
    for _ in range(10):
        at = rng.randint(1, 3)  # rank 0's loss computations (training or validation) after this restart
        code, out = _finish(_start(root, channel, {"SIGTERM_PARENT_AT": str(at)}, hps=hps_epochs))
        if code == 0 or all(o is not None and not o.failed for o in read_outcomes(root / "job.json", 2)):
            break  # the signal came during the last step: both processes finished (PID 1 reports success)
        assert failure.exists(), out[-3000:]
        reason = failure.read_text()
        assert reason.startswith("Stopped: training stopped by SIGTERM at step"), out[-3000:]
        found = CheckpointManager(root / "checkpoints", keep=3).latest()
        assert found is not None and f"at step {found[1]['step']} " in reason, (reason, out[-3000:])
        stops.append(found[1]["step"])
        failure.unlink()  # PID 1 clears the previous outcome
    assert len(stops) >= 8 and stops == sorted(set(stops)), stops
    if not (root / "model" / "model.pt").exists():
        code, out = _finish(_start(root, channel, hps=hps_epochs))
        assert code == 0, out[-3000:]
    expected, got = _weights(tmp_path / "straight"), _weights(root)
    assert all(torch.equal(expected[k], got[k]) for k in expected), stops
