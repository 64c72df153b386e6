"""The SageMaker Python SDK v2 in local mode with instance_count=2 drives a two-host training job.

Local mode names the hosts algo-1-xxxxx / algo-2-xxxxx, puts them on its `sagemaker-local` network and
runs compose with --abort-on-container-exit, so fit() returning is not proof that every host succeeded:
the test reads each host's outcome from the compose log (lines are prefixed with the service = host name).
Reuses the SDK venv and offline environment of test_sdk_local.py (container/scripts/make-sdk-venvs.sh).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.container.test_sdk_local import PYTHONS, SCRIPTS, _offline_env, sdk_cleanup  # noqa: F401 - fixture

pytestmark = [pytest.mark.container, pytest.mark.sdk, pytest.mark.slow]


def test_sdk_v2_local_mode_two_instances(image: str, synthetic_channel: Path, tmp_path: Path,
                                         sdk_cleanup: None) -> None:  # noqa: F811
    python = PYTHONS["v2"]
    if not Path(python).exists():
        pytest.skip(f"SDK v2 venv missing at {python}: run container/scripts/make-sdk-venvs.sh")
    proc = subprocess.run(
        [python, str(SCRIPTS / "sdk_v2_multi.py"), "--image", image, "--work", str(tmp_path / "work"),
         "--train", str(synthetic_channel)],
        env=_offline_env(tmp_path), capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    result = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("RESULT "))[7:])

    by_host: dict[str, list[str]] = {}
    for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines():  # compose colours its prefixes
        # "<project>-algo-1-xxxxx | text" (compose v1 container name) or "algo-1-xxxxx | text"
        m = re.match(r"^(?:\w+-)?(algo-\d+-[a-z0-9]+)\s+\|\s?(.*)$", line)
        if m:
            by_host.setdefault(m.group(1), []).append(m.group(2))
    hosts = sorted(by_host)
    assert len(hosts) == 2 and all(re.fullmatch(r"algo-[12]-\w{5}", h) for h in hosts), hosts
    for host in hosts:
        text = "\n".join(by_host[host])
        assert "Reporting training SUCCESS" in text, f"{host} did not succeed:\n{text[-3000:]}"
        assert "Traceback" not in text, text[-3000:]
    first, second = ("\n".join(by_host[h]) for h in hosts)
    assert f"--master_addr={hosts[0]}" in second and "--node_rank=1" in second
    assert first.count("#metric epoch=2 validation:mean_angular_error=") == 1 and "#metric" not in second
    assert result["model_files"] == ["drift_baseline.json", "model.json", "model.pt"]
    assert "data/metrics.json" in result["output_files"] and "success" in result["output_files"]
