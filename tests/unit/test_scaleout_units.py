"""Scale-out building blocks without processes: layout, DNS retry, sampler padding, record streams."""

from __future__ import annotations

import io
import socket
import tarfile
import time
from pathlib import Path

import pytest

from container import distributed
from container.worker import peers_in
from train.data import EpochSampler
from train.settings import settings_from_env
from train.stream import is_held_out, iter_records

NO_ENV = settings_from_env({})

TWO = {"current_host": "algo-2-abcde", "hosts": ["algo-1-abcde", "algo-2-abcde"], "network_interface_name": "eth0"}


def test_layout_comes_from_resourceconfig_not_host_names():
    layout = distributed.plan(TWO, pipe=False, settings=NO_ENV)
    assert layout.node_rank == 1 and layout.master == "algo-1-abcde" and layout.master_port == 7777
    assert layout.processes_per_host == 1  # CPU-only here
    assert layout.world_size == 2 and layout.peer_timeout_s == 600
    cmd = distributed.torchrun_command(layout, __import__("pathlib").Path("/x/job.json"))
    assert "--node_rank=1" in cmd and "--master_addr=algo-1-abcde" in cmd and "--rdzv_conf=timeout=600" in cmd


def test_layout_overrides_and_pipe_means_one_process_per_host():
    env = {"BYOC_PROCESSES_PER_HOST": "4", "BYOC_MASTER_PORT": "29400", "BYOC_PEER_TIMEOUT_S": "5"}
    layout = distributed.plan(TWO, pipe=False, settings=settings_from_env(env))
    assert (layout.processes_per_host, layout.master_port, layout.peer_timeout_s, layout.world_size) == (4, 29400, 5, 8)
    assert distributed.plan(TWO, pipe=True, settings=settings_from_env(env)).processes_per_host == 1
    with pytest.raises(ValueError, match="not in hosts"):
        distributed.plan({**TWO, "current_host": "algo-3"}, pipe=False, settings=NO_ENV)


def test_single_host_single_process_stays_in_process():
    one = {"current_host": "algo-1", "hosts": ["algo-1"]}
    assert distributed.plan(one, pipe=False, settings=NO_ENV).world_size == 1


def test_dns_is_retried_until_the_peer_appears():
    calls = {"n": 0}

    def flaky(host):
        calls["n"] += 1
        if calls["n"] < 3:
            raise socket.gaierror("not yet")
        return "10.0.0.2"

    assert distributed.wait_for_hosts(("algo-2",), timeout_s=10, resolve=flaky) == {"algo-2": "10.0.0.2"}


def test_a_peer_that_never_resolves_fails_in_time_naming_it():
    def resolve(host):
        if host == "algo-2":
            raise socket.gaierror("Name or service not known")
        return "10.0.0.1"

    started = time.monotonic()
    with pytest.raises(distributed.PeerError, match="host algo-2 did not resolve in DNS within 1 s"):
        distributed.wait_for_hosts(("algo-1", "algo-2"), timeout_s=1, resolve=resolve)
    assert time.monotonic() - started < 5


def test_peer_ips_in_errors_are_named():
    msg = "RuntimeError: Connection closed by peer [10.0.0.7]:43210"
    assert peers_in(msg, ["algo-1", "algo-2"], resolve={"algo-1": "10.0.0.6", "algo-2": "10.0.0.7"}.get) == ["algo-2"]


def test_unequal_shards_pad_to_the_same_number_of_samples():
    # Host A holds 3 samples, host B 7: with per_rank = global max every rank yields the same count.
    small = EpochSampler(3, seed=0, epoch=0, shuffle=True, rank=0, world_size=1, per_rank=7)
    large = EpochSampler(7, seed=0, epoch=0, shuffle=True, rank=0, world_size=1, per_rank=7)
    assert len(small) == len(large) == 7
    assert sorted(set(small)) == [0, 1, 2] and sorted(large) == list(range(7))
    # The default is unchanged: ceil(length / world) and disjoint shards of one permutation.
    a = list(EpochSampler(10, seed=1, epoch=2, shuffle=True, rank=0, world_size=2))
    b = list(EpochSampler(10, seed=1, epoch=2, shuffle=True, rank=1, world_size=2))
    assert len(a) == len(b) == 5 and sorted(a + b) == list(range(10))


def _tar(members: list[tuple[str, bytes]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_tar_members_group_into_records_by_key():
    stream = _tar([("a.png", b"1"), ("a.normals.png", b"2"), ("dir/b.jpg", b"3"), ("dir/b.normals.png", b"4"),
                   ("dir/b.mask.png", b"5")])
    records = list(iter_records(stream))
    assert [r.key for r in records] == ["a", "dir/b"]
    assert records[1].files == {"jpg": b"3", "normals.png": b"4", "mask.png": b"5"}


def test_hold_out_is_stable_and_roughly_the_fraction():
    keys = [f"scene_{i:04d}" for i in range(2000)]
    held = [k for k in keys if is_held_out(k, 0.1, seed=0)]
    assert 150 < len(held) < 250
    assert held == [k for k in keys if is_held_out(k, 0.1, seed=0)]
    assert not any(is_held_out(k, 0.0, seed=0) for k in keys)


def test_torchrun_leaves_workers_the_full_sagemaker_stop_grace():
    # torchrun SIGKILLs workers shutdown_timeout seconds after forwarding SIGTERM (default 30 s); SageMaker
    # itself waits 120 s, and rank 0 may need most of that for a slow step plus its checkpoint.
    from torch.distributed.run import get_args_parser

    layout = distributed.plan({"hosts": ["algo-1", "algo-2"], "current_host": "algo-1"}, pipe=False,
                              settings=settings_from_env({"BYOC_PROCESSES_PER_HOST": "2"}))
    command = distributed.torchrun_command(layout, Path("job.json"))
    assert command[1:3] == ["-m", "torch.distributed.run"]
    args = get_args_parser().parse_args(command[3:])  # the installed torchrun accepts every flag we pass
    assert args.shutdown_timeout == distributed.SAGEMAKER_STOP_GRACE_S == 120
    env = distributed.worker_environment(layout, environ={})
    assert env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"] == "120"
