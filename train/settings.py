"""Training environment, parsed once into typed values (the serving side has serve/settings.py).

Every variable training reads is listed in ``VARIABLES`` (name, default, meaning), so the README table, the
parser and the near-miss check cannot drift apart. A bad value fails the job as a ``UserError`` naming the
variable, the value and what would be accepted. An unknown ``BYOC_*`` name that is a near miss of a real one
(``BYOC_PROCESS_PER_HOST``) fails too: a typo must not silently fall back to the default. Other ``BYOC_*``
names are left alone, since tools around the image (test harnesses, launchers) use the prefix as well.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from train.errors import UserError

DEFAULT_BASE_DIR = Path("/opt/ml")
DEFAULT_MASTER_PORT = 7777
DEFAULT_PEER_TIMEOUT_S = 600.0
DEFAULT_COLLECTIVE_TIMEOUT_S = 1800.0
DEFAULT_PIPE_TIMEOUT_S = 600.0

#: (name, default, meaning) for the README and the error messages.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("SAGEMAKER_BASE_DIR", str(DEFAULT_BASE_DIR), "root of the training job's tree (SageMaker's own; tests move it)"),
    ("BYOC_PROCESSES_PER_HOST", "number of GPUs (1 on CPU)", "training processes per instance"),
    ("BYOC_MASTER_PORT", str(DEFAULT_MASTER_PORT),
     "rendezvous / process-group port on `hosts[0]` (must be open between instances)"),
    ("BYOC_PEER_TIMEOUT_S", f"{DEFAULT_PEER_TIMEOUT_S:g}",
     "each peer's DNS name must resolve (retried: DNS lags at start), and all hosts must join the rendezvous, "
     "within this time"),
    ("BYOC_COLLECTIVE_TIMEOUT_S", f"{DEFAULT_COLLECTIVE_TIMEOUT_S:g}",
     "a process blocked in one collective (a peer died or hangs) fails after this instead of hanging"),
    ("BYOC_PIPE_TIMEOUT_S", f"{DEFAULT_PIPE_TIMEOUT_S:g}", "Pipe mode: how long to wait for the next epoch's FIFO"),
)
#: Set by PID 1 for the processes torchrun starts; never by users.
INTERNAL = ("BYOC_CURRENT_HOST", "BYOC_HOSTS", "BYOC_HOST_ADDRESSES")
_NAMES = tuple(name for name, _, _ in VARIABLES)


@dataclass(frozen=True)
class TrainSettings:
    base_dir: Path = DEFAULT_BASE_DIR
    #: None: one per GPU (container/distributed.py decides from the hardware).
    processes_per_host: int | None = None
    master_port: int = DEFAULT_MASTER_PORT
    peer_timeout_s: float = DEFAULT_PEER_TIMEOUT_S
    collective_timeout_s: float = DEFAULT_COLLECTIVE_TIMEOUT_S
    pipe_timeout_s: float = DEFAULT_PIPE_TIMEOUT_S
    job_name: str = "local"
    #: Peer host -> IP address, resolved by PID 1 at start (a dead peer's name may no longer resolve).
    host_addresses: Mapping[str, str] = field(default_factory=dict)


def _bad(name: str, raw: str, rule: str) -> UserError:
    return UserError(f"environment variable {name}={raw!r} is not {rule}",
                     f"set {name} to {rule}, or unset it for the default")


def _number(env: Mapping[str, str], name: str, kind: type, default, low, high):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    rule = f"a whole number in [{low}, {high}]" if kind is int else f"a number of seconds in ({low:g}, {high:g}]"
    try:
        value = kind(raw)
    except ValueError:
        raise _bad(name, raw, rule) from None
    if not (low <= value <= high if kind is int else low < value <= high):
        raise _bad(name, raw, rule)
    return value


def _addresses(env: Mapping[str, str]) -> dict[str, str]:
    raw = env.get("BYOC_HOST_ADDRESSES", "").strip()
    try:
        found = json.loads(raw) if raw else {}
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise _bad("BYOC_HOST_ADDRESSES", raw, "a JSON object of host -> address (PID 1 sets it)")
    return {str(k): str(v) for k, v in found.items()}


def _check_names(env: Mapping[str, str]) -> None:
    known = set(_NAMES) | set(INTERNAL)
    for name in sorted(n for n in env if n.startswith("BYOC_") and n not in known):
        close = difflib.get_close_matches(name, _NAMES, n=1, cutoff=0.85)
        if close:
            raise UserError(f"unknown environment variable {name} (did you mean {close[0]}?)",
                            f"rename it; training reads {', '.join(n for n in _NAMES if n.startswith('BYOC_'))}")


def base_dir(env: Mapping[str, str] | None = None) -> Path:
    """The job's tree root alone, for code that must report before the rest is parsed (the driver check)."""
    env = os.environ if env is None else env
    return Path(env.get("SAGEMAKER_BASE_DIR", "").strip() or DEFAULT_BASE_DIR)


def settings_from_env(env: Mapping[str, str] | None = None) -> TrainSettings:
    """Parse the training environment (``os.environ`` by default) once; bad values raise UserError."""
    env = os.environ if env is None else env
    _check_names(env)
    return TrainSettings(
        base_dir=base_dir(env),
        processes_per_host=_number(env, "BYOC_PROCESSES_PER_HOST", int, None, 1, 1024),
        master_port=_number(env, "BYOC_MASTER_PORT", int, DEFAULT_MASTER_PORT, 1, 65535),
        peer_timeout_s=_number(env, "BYOC_PEER_TIMEOUT_S", float, DEFAULT_PEER_TIMEOUT_S, 0.0, 86400.0),
        collective_timeout_s=_number(env, "BYOC_COLLECTIVE_TIMEOUT_S", float, DEFAULT_COLLECTIVE_TIMEOUT_S, 0.0,
                                     86400.0),
        pipe_timeout_s=_number(env, "BYOC_PIPE_TIMEOUT_S", float, DEFAULT_PIPE_TIMEOUT_S, 0.0, 86400.0),
        job_name=env.get("TRAINING_JOB_NAME", "").strip() or "local",
        host_addresses=_addresses(env),
    )


def markdown_table() -> str:
    """The README's table of training variables (``python -m train.settings`` prints it)."""
    rows = [f"| `{n}` | {d if ' ' in d else f'`{d}`'} | {m} |" for n, d, m in VARIABLES if n.startswith("BYOC_")]
    return "\n".join(["| variable | default | meaning |", "|---|---|---|", *rows])


if __name__ == "__main__":
    print(markdown_table())
