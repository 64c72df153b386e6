"""Two-host training with the real image: two containers on a Docker bridge network made by the test.

Each container gets its own hand-written resourceconfig.json, like SageMaker writes on each instance.
Host names are the container names (``algo-1-<suffix>``, as in SDK local mode), never plain ``algo-1``:
the image must not depend on them. CPU and gloo; ~1 minute on a 2-core machine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from model.artifact import load_model_dir
from tests.container.mltree import TINY_HYPERPARAMETERS, MLTree, finish, make_tree, start

HPS = {**TINY_HYPERPARAMETERS, "checkpoint_steps": "0"}
FAST_FAIL = {"BYOC_PEER_TIMEOUT_S": "8", "BYOC_COLLECTIVE_TIMEOUT_S": "60"}


@pytest.fixture
def network(docker_client) -> Iterator[tuple[str, list[str]]]:
    suffix = uuid.uuid4().hex[:6]
    net = docker_client.networks.create(f"byoc-dist-{suffix}", driver="bridge")
    hosts = [f"algo-1-{suffix}", f"algo-2-{suffix}"]
    try:
        yield net.name, hosts
    finally:
        for host in hosts:
            try:
                docker_client.containers.get(host).remove(force=True)
            except Exception:
                pass
        net.remove()


def _tree(tmp_path, host: str, hosts: list[str], channel, hps=HPS) -> MLTree:
    resource = {"current_host": host, "hosts": hosts, "network_interface_name": "eth0",
                "current_instance_type": "local", "current_group_name": "homogeneousCluster",
                "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": "local",
                                     "hosts": list(reversed(hosts))}]}
    return make_tree(tmp_path / host / "ml", hps, {"train": channel}, resource=resource)


def _start(docker_client, image, tree, host, net, environment=None, command="train"):
    return start(docker_client, image, tree, command=command, name=host, hostname=host, network=net,
                 environment=environment or {})


def test_two_hosts_train_together_and_only_the_first_writes_the_model(docker_client, image, synthetic_channel,
                                                                       tmp_path, network):
    net, hosts = network
    trees = [_tree(tmp_path, h, hosts, synthetic_channel) for h in hosts]
    # Start the second host first: the first host's DNS name and rendezvous may lag, as on SageMaker.
    second = _start(docker_client, image, trees[1], hosts[1], net)
    time.sleep(1)
    first = _start(docker_client, image, trees[0], hosts[0], net)
    (code1, logs1), (code2, logs2) = finish(first, timeout=300), finish(second, timeout=300)
    assert (code1, code2) == (0, 0), logs1[-3000:] + "\n-----\n" + logs2[-3000:]
    assert sorted(p.name for p in trees[0].model_dir.iterdir()) == ["drift_baseline.json", "model.json", "model.pt"]
    assert list(trees[1].model_dir.iterdir()) == [] and list(trees[1].output_data.iterdir()) == []
    loaded = load_model_dir(trees[0].model_dir)
    assert loaded.preprocessing["image_size"] == 32
    for tree in trees:
        assert (tree.root / "output" / "success").exists() and not tree.failure.exists()
    # Validation metrics are global and reported once, by rank 0 on the first host.
    assert logs1.count("#metric epoch=2 validation:mean_angular_error=") == 1
    assert "#metric" not in logs2
    assert f"--master_addr={hosts[0]}" in logs2 and "--node_rank=1" in logs2 and "--master_port=7777" in logs2


def test_a_peer_that_never_comes_up_fails_within_the_timeout(docker_client, image, synthetic_channel, tmp_path,
                                                             network):
    net, hosts = network
    tree = _tree(tmp_path, hosts[0], hosts, synthetic_channel)
    started = time.monotonic()
    code, logs = finish(_start(docker_client, image, tree, hosts[0], net, FAST_FAIL), timeout=120)
    assert code != 0, logs[-3000:]
    assert time.monotonic() - started < 60
    reason = tree.failure.read_text()
    assert f"on host {hosts[0]}: host {hosts[1]} did not resolve in DNS within 8 s" in reason, reason


def test_a_peer_that_resolves_but_never_joins_fails_within_the_timeout(docker_client, image, synthetic_channel,
                                                                       tmp_path, network):
    net, hosts = network
    tree = _tree(tmp_path, hosts[0], hosts, synthetic_channel)
    idle = _start(docker_client, image, _tree(tmp_path, hosts[1], hosts, synthetic_channel), hosts[1], net,
                  command="sleep 120")
    try:
        started = time.monotonic()
        code, logs = finish(_start(docker_client, image, tree, hosts[0], net, FAST_FAIL), timeout=120)
        assert code != 0, logs[-3000:]
        assert time.monotonic() - started < 60
        reason = tree.failure.read_text()
        assert reason.startswith(f"InternalError: on host {hosts[0]}: torchrun exited"), reason
        assert f"did not join {hosts[0]}:7777 within BYOC_PEER_TIMEOUT_S=8 s" in reason
    finally:
        idle.remove(force=True)


def _two_running(docker_client, image, synthetic_channel, tmp_path, network, hps, env=None):
    net, hosts = network
    trees = [_tree(tmp_path, h, hosts, synthetic_channel, hps) for h in hosts]
    containers = [_start(docker_client, image, t, h, net, env) for t, h in zip(trees, hosts, strict=True)]
    return hosts, trees, containers


def _wait_logs(container, needle: bytes, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while needle not in container.logs():
        assert time.monotonic() < deadline, f"{needle!r} not seen: {container.logs()[-2000:]!r}"
        time.sleep(0.5)


def test_sigterm_to_the_first_host_stops_both_at_the_same_step_with_a_checkpoint(docker_client, image,
                                                                                  synthetic_channel, tmp_path,
                                                                                  network):
    hps = {**HPS, "epochs": "40", "log_every_steps": "1"}
    _, trees, (first, second) = _two_running(docker_client, image, synthetic_channel, tmp_path, network, hps)
    _wait_logs(first, b"epoch 2/40", timeout=180)
    first.kill(signal="SIGTERM")
    (code1, logs1), (code2, logs2) = finish(first, timeout=120), finish(second, timeout=120)
    assert (code1, code2) == (143, 143), logs1[-3000:] + "\n-----\n" + logs2[-3000:]
    assert "SIGTERM: forwarding to torchrun" in logs1
    assert trees[0].failure.read_text().startswith("Stopped: training stopped by SIGTERM at step")
    assert trees[1].failure.read_text().startswith("Stopped:")
    assert list(trees[0].checkpoints.glob("*.pt")) and not list(trees[1].checkpoints.glob("*.pt"))


def test_a_host_that_dies_fails_the_other_naming_it(docker_client, image, synthetic_channel, tmp_path, network):
    hps = {**HPS, "epochs": "40", "log_every_steps": "1"}
    hosts, trees, (first, second) = _two_running(docker_client, image, synthetic_channel, tmp_path, network, hps,
                                                 FAST_FAIL)
    _wait_logs(first, b"epoch 2/40", timeout=180)
    second.kill()  # SIGKILL: no goodbye
    started = time.monotonic()
    code1, logs1 = finish(first, timeout=120)
    assert code1 != 0 and time.monotonic() - started < 90, logs1[-3000:]
    reason = trees[0].failure.read_text()
    assert reason.startswith(f"InternalError: on host {hosts[0]}"), reason
    assert f"lost contact with host {hosts[1]}" in reason.splitlines()[0], reason
