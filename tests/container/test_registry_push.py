"""build_and_push.sh against a real registry: push, forget the image locally, pull it back, train and serve.

The registry is Debian's `docker-registry` (the CNCF distribution server) on a free loopback port with storage
in a temp dir; 127.0.0.0/8 is trusted for plain HTTP by the engine, so no TLS setup is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port, http_server

pytestmark = [pytest.mark.container, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NAME = "byoc-ship-registry-test"
TINY = {"synthetic_samples": "8", "synthetic_size": "32", "image_size": "32", "epochs": "1", "base_channels": "4",
        "depth": "2", "batch_size": "4", "data_workers": "0"}
MANIFEST_TYPES = ", ".join(["application/vnd.docker.distribution.manifest.v2+json",
                            "application/vnd.oci.image.manifest.v1+json"])



def _docker(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("docker-registry")
    if exe is None:
        pytest.fail("docker-registry is missing: apt-get install docker-registry (Debian's registry server)")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n")
    host = f"127.0.0.1:{port}"
    with http_server([exe, "serve", str(config)], f"http://{host}/v2/", root / "registry.log"):
        yield host


def _base_image_args() -> list[str]:
    base = os.environ.get("BASE_IMAGE")
    if not base and _docker("image", "inspect", "byoc-base:bookworm", check=False).returncode == 0:
        base = "byoc-base:bookworm"  # the offline base on machines without a reachable public registry
    return ["--base-image", base] if base else []


def _registry_json(url: str, accept: str | None = None) -> dict:
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def _forget_locally(image_id: str) -> None:
    """Remove every tag of our image, so the pull below has to fetch it (its layers may be shared)."""
    tags = json.loads(_docker("image", "inspect", image_id, "--format", "{{json .RepoTags}}").stdout)
    ours = [t for t in tags if t.split("/")[-1].startswith(f"{NAME}:")]
    others = sorted(set(tags) - set(ours))
    assert not others, f"other tags point at the pushed image, cannot forget it: {others}"
    _docker("rmi", *ours)
    assert _docker("image", "inspect", image_id, check=False).returncode != 0, "image still present locally"


def _write_tree(root: Path) -> Path:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(TINY))
    (config / "inputdataconfig.json").write_text("{}")
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    for sub in ("input/data", "model", "output", "checkpoints"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return root


def _ping(port: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_push_to_a_registry_then_pull_train_and_serve(registry: str, tmp_path: Path) -> None:
    started = time.monotonic()
    proc = subprocess.run([str(REPO / "build_and_push.sh"), "--registry", registry, *_base_image_args(), NAME],
                          cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    uri = proc.stdout.strip().splitlines()[-1]
    tag = uri.rsplit(":", 1)[1]
    assert uri == f"{registry}/{NAME}:{tag}"
    print(f"build+push {time.monotonic() - started:.0f} s -> {uri}")

    # The registry holds both tags and every blob of the manifest.
    assert set(_registry_json(f"http://{registry}/v2/{NAME}/tags/list")["tags"]) == {tag, "latest"}
    manifest = _registry_json(f"http://{registry}/v2/{NAME}/manifests/{tag}", MANIFEST_TYPES)
    for blob in [manifest["config"], *manifest["layers"]]:
        head = urllib.request.Request(f"http://{registry}/v2/{NAME}/blobs/{blob['digest']}", method="HEAD")
        with urllib.request.urlopen(head, timeout=10) as resp:
            assert int(resp.headers["Content-Length"]) == blob["size"]

    image_id = _docker("image", "inspect", uri, "--format", "{{.Id}}").stdout.strip()
    labels = json.loads(_docker("image", "inspect", uri, "--format", "{{json .Config.Labels}}").stdout)
    assert labels["org.opencontainers.image.version"] == tag
    assert _docker("image", "inspect", uri, "--format", "{{.Os}}/{{.Architecture}}").stdout.strip() == "linux/amd64"
    _forget_locally(image_id)

    pulled = _docker("pull", uri)
    assert "Downloaded newer image" in pulled.stdout or "Pull complete" in pulled.stdout, pulled.stdout
    try:
        assert _docker("image", "inspect", uri, "--format", "{{.Id}}").stdout.strip() == image_id

        tree = _write_tree(tmp_path / "ml")
        run = _docker("run", "--rm", "-v", f"{tree}:/opt/ml", uri, "train", check=False)
        assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
        assert any((tree / "model").iterdir()), "train wrote nothing to /opt/ml/model"

        cid = _docker("run", "-d", "-p", "127.0.0.1::8080", "-v", f"{tree / 'model'}:/opt/ml/model:ro", uri,
                      "serve").stdout.strip()
        try:
            port = _docker("port", cid, "8080/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1]
            deadline = time.monotonic() + 120
            while (status := _ping(port)) != 200:
                running = _docker("inspect", cid, "--format", "{{.State.Running}}").stdout.strip()
                if running != "true" or time.monotonic() > deadline:
                    logs = _docker("logs", cid, check=False)
                    pytest.fail(f"/ping never answered 200 (last {status}): {(logs.stdout + logs.stderr)[-3000:]}")
                time.sleep(0.2)
        finally:
            _docker("rm", "-f", cid, check=False)
    finally:
        _docker("rmi", "-f", uri, f"{registry}/{NAME}:latest", check=False)
