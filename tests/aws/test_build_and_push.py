"""build_and_push.sh's ECR path against moto, with a stand-in `docker` that records its arguments.

moto's ECR is no registry, so the real push is tested against a local registry in
tests/container/test_registry_push.py; here we check the AWS side (repository with scan-on-push, login
to the account's registry, both tags pushed, URI printed) and the error messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

pytestmark = pytest.mark.aws
REPO = Path(__file__).resolve().parents[2]
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Records every call; behaviour per subcommand is steered by FAKE_DOCKER_* variables.
echo "$*" >> "$FAKE_DOCKER_LOG"
case $1 in
  info)
    if [[ -n ${FAKE_DOCKER_NO_ENGINE:-} ]]; then
      echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
      exit 1
    fi ;;
  image) echo "${FAKE_DOCKER_ARCH:-linux/amd64}" ;;
  login) echo "login-password=$(cat)" >> "$FAKE_DOCKER_LOG"; echo "Login Succeeded" ;;
  push)
    if [[ -n ${FAKE_DOCKER_DENY:-} ]]; then
      echo "denied: User is not authorized to perform: ecr:InitiateLayerUpload" >&2
      exit 1
    fi ;;
esac
exit 0
"""


def _run(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DOCKER": str(docker), "PYTHON": sys.executable,
            "FAKE_DOCKER_LOG": str(log), **env}
    proc = subprocess.run([str(REPO / "build_and_push.sh"), *args], env=full, capture_output=True, text=True,
                          timeout=120)
    return proc, log.read_text().splitlines() if log.exists() else []


def _sha_tag() -> str:
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    return sha.strip()


def test_ecr_push_creates_the_repository_logs_in_and_pushes_both_tags(aws, tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, aws.env, "--variant", "cpu", "--build-arg", "EXTRA=1", "ship-test")

    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip().splitlines()[-1]
    assert uri.startswith(f"{REGISTRY}/ship-test:{_sha_tag()}")
    tag = uri.rsplit(":", 1)[1]
    build = next(c for c in calls if c.startswith("build "))
    assert "--platform linux/amd64" in build and "--build-arg VARIANT=cpu" in build and "--build-arg EXTRA=1" in build
    assert f"-t ship-test:{tag}" in build and "-t ship-test:latest" in build
    login = calls.index(f"login --username AWS --password-stdin {REGISTRY}")
    assert calls[login + 1].startswith("login-password=") and len(calls[login + 1]) > len("login-password=")
    assert [c for c in calls if c.startswith("push ")] == [f"push {REGISTRY}/ship-test:{tag}",
                                                          f"push {REGISTRY}/ship-test:latest"]
    repo = boto3.client("ecr", region_name="us-east-1").describe_repositories(repositoryNames=["ship-test"])
    assert repo["repositories"][0]["imageScanningConfiguration"] == {"scanOnPush": True}

    again, _ = _run(tmp_path, aws.env, "ship-test")
    assert again.returncode == 0, again.stderr
    assert "ECR repository ship-test already exists" in again.stderr


def test_existing_repository_gets_scan_on_push_turned_on(aws, tmp_path: Path) -> None:
    boto3.client("ecr", region_name="us-east-1").create_repository(repositoryName="old-repo")
    proc, _ = _run(tmp_path, aws.env, "old-repo")
    assert proc.returncode == 0, proc.stderr
    repo = boto3.client("ecr", region_name="us-east-1").describe_repositories(repositoryNames=["old-repo"])
    assert repo["repositories"][0]["imageScanningConfiguration"] == {"scanOnPush": True}


def test_no_push_builds_only_and_calls_no_aws(tmp_path: Path) -> None:
    proc, calls = _run(tmp_path, {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}, "--no-push", "--base-image",
                       "byoc-base:bookworm", "ship-test")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("ship-test:")
    assert "--build-arg BASE_IMAGE=byoc-base:bookworm" in next(c for c in calls if c.startswith("build "))
    assert not [c for c in calls if c.startswith(("login", "push"))]


def test_no_docker_engine_is_explained(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, {"FAKE_DOCKER_NO_ENGINE": "1"}, "--no-push")
    assert proc.returncode == 1
    assert "error: no Docker engine answers (Cannot connect to the Docker daemon" in proc.stderr
    assert "fix: start Docker" in proc.stderr


def test_missing_credentials_are_explained(aws, tmp_path: Path) -> None:
    env = {k: v for k, v in aws.env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    proc, calls = _run(tmp_path, env, "ship-test")
    assert proc.returncode == 1
    assert "error: no AWS credentials found" in proc.stderr and "fix: run `aws configure`" in proc.stderr
    assert not [c for c in calls if c.startswith("push")]


def test_missing_region_is_explained(aws, tmp_path: Path) -> None:
    env = {k: v for k, v in aws.env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    proc, _ = _run(tmp_path, env, "ship-test")
    assert proc.returncode == 1
    assert "error: no AWS region is configured" in proc.stderr and "fix: pass --region" in proc.stderr


def test_region_flag_wins(aws, tmp_path: Path) -> None:
    env = {k: v for k, v in aws.env.items() if k not in ("AWS_REGION", "AWS_DEFAULT_REGION")}
    proc, _ = _run(tmp_path, env, "--region", "eu-west-1", "ship-test")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/ship-test:")


def test_denied_push_is_explained(aws, tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, {**aws.env, "FAKE_DOCKER_DENY": "1"}, "ship-test")
    assert proc.returncode == 1
    assert "the registry refused the push" in proc.stderr and "ecr:InitiateLayerUpload" in proc.stderr


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, {"FAKE_DOCKER_ARCH": "linux/arm64"}, "--no-push")
    assert proc.returncode == 1
    assert "built for linux/arm64, not linux/amd64" in proc.stderr


def test_gpu_build_refuses_a_cpu_only_wheelhouse(tmp_path: Path) -> None:
    if not list((REPO / "wheelhouse").glob("torch-*+cpu-*.whl")):
        pytest.skip("no CPU torch wheel in wheelhouse/")
    proc, _ = _run(tmp_path, {}, "--variant", "gpu", "--no-push")
    assert proc.returncode == 1
    assert "CPU-only torch wheel" in proc.stderr


@pytest.mark.parametrize(("variant", "wheel", "message"), [
    ("gpu", "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "CPU-only torch wheel"),
    ("cpu", "torch-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "no CPU-only torch wheel"),
])
def test_a_wheelhouse_of_the_other_variant_is_refused(tmp_path: Path, variant: str, wheel: str,
                                                      message: str) -> None:
    checkout = tmp_path / "checkout"  # the script works in its own directory: give it a wheelhouse of our choosing
    (checkout / "wheelhouse").mkdir(parents=True)
    (checkout / "wheelhouse" / wheel).write_bytes(b"")
    (checkout / "build_and_push.sh").write_text((REPO / "build_and_push.sh").read_text())
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DOCKER": str(docker),
           "FAKE_DOCKER_LOG": str(tmp_path / "docker.log")}
    proc = subprocess.run(["bash", str(checkout / "build_and_push.sh"), "--variant", variant, "--no-push"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert message in proc.stderr
    assert f"make-wheelhouse.sh python3 {variant}" in proc.stderr
    assert "build" not in (tmp_path / "docker.log").read_text().split()  # refused before building


def test_usage_and_bad_options(tmp_path: Path) -> None:
    proc, _ = _run(tmp_path, {}, "--help")
    assert proc.returncode == 0 and "Usage: ./build_and_push.sh" in proc.stdout
    proc, _ = _run(tmp_path, {}, "--variant", "tpu")
    assert proc.returncode == 2 and "--variant must be cpu or gpu" in proc.stderr
    proc, _ = _run(tmp_path, {}, "--frobnicate")
    assert proc.returncode == 2 and "unknown option --frobnicate" in proc.stderr
