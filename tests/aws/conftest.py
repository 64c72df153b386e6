"""A moto server standing in for AWS (ECR, STS, SageMaker, Application Auto Scaling, CloudWatch Logs).

One server per test session on a free loopback port; its state is reset before every test. Tests point
boto3 at it through AWS_ENDPOINT_URL (what a user's shell would do too), with dummy credentials and no
config files, so nothing can reach real AWS. ``recorded`` captures the exact parameters our code sends:
moto accepts far more than AWS does, so assertions are on our requests, not on moto's answers.
"""

from __future__ import annotations

import copy
import shutil
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.servers import free_port, http_server

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerExecution"


@pytest.fixture(scope="session")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        found = shutil.which("moto_server")
        if found is None:
            pytest.fail("moto_server is missing: pip install 'moto[server]' (tests/requirements.txt has it)")
        exe = Path(found)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with http_server([str(exe), "-H", "127.0.0.1", "-p", str(port)], f"{url}/moto-api/", log):
        yield url


def aws_env(moto_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for a process that must talk to moto only."""
    return {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


@dataclass
class Recorder:
    """Every API call's (service, operation, params) as sent by our code, before botocore serialises it."""

    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.calls.append((model.service_model.endpoint_prefix, model.name, copy.deepcopy(params)))

    def ops(self) -> list[str]:
        return [op for _, op, _ in self.calls]

    def only(self, operation: str) -> dict[str, Any]:
        found = [p for _, op, p in self.calls if op == operation]
        assert len(found) == 1, f"expected one {operation}, got {len(found)}: {self.ops()}"
        return found[0]


@dataclass
class Aws:
    url: str
    env: dict[str, str]
    recorder: Recorder

    def session(self) -> boto3.Session:
        session = boto3.Session(region_name=REGION)
        session.events.register("provide-client-params", self.recorder)
        return session


@pytest.fixture
def aws(moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Aws:
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).close()
    env = aws_env(moto_url, tmp_path)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Aws(moto_url, env, Recorder())
