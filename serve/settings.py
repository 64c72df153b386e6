"""Serving environment, parsed once into typed values.

Every variable the server reads is listed in ``VARIABLES`` (name, default, meaning) so the README table and
the parser cannot drift apart. Bad values raise ``SettingsError`` naming the variable, the value and what
would be accepted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BATCH_STRATEGIES = {"multirecord": "MultiRecord", "multi_record": "MultiRecord",
                    "singlerecord": "SingleRecord", "single_record": "SingleRecord"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

#: (name, default, meaning) for the README and --help.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("SAGEMAKER_BIND_TO_PORT", "8080", "port to listen on (all interfaces)"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS / MODEL_SERVER_WORKERS", "GPUs, else min(2, CPUs)", "gunicorn worker processes"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT / MODEL_SERVER_TIMEOUT", "60 (600 in batch transform)",
     "seconds a request may wait for its prediction"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6", "largest request body (MiB); larger -> 413"),
    ("SAGEMAKER_BATCH", "false", "set by batch transform (any case of true/false)"),
    ("SAGEMAKER_BATCH_STRATEGY", "MultiRecord", "BatchStrategy reported by /execution-parameters"),
    ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "workers", "MaxConcurrentTransforms reported by /execution-parameters"),
    ("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "(per request type)", "response type for a missing or */* Accept"),
    ("SM_MODEL_DIR", "/opt/ml/model", "model directory (read only)"),
    ("SERVE_MAX_IMAGE_PIXELS", "4194304", "largest H*W of one image; larger -> 400"),
    ("SERVE_MAX_IMAGES", "64", "most images in one request; more -> 400"),
    ("SERVE_MAX_BATCH_SIZE", "1 on CPU, 8 on GPU", "dynamic batching: most images in one forward pass"),
    ("SERVE_MAX_BATCH_DELAY_MS", "0 on CPU, 5 on GPU", "dynamic batching: longest wait for a batch to fill"),
    ("SERVE_PRECISION", "auto", "auto|fp32|bf16|fp16 (auto: bf16/fp16 autocast on GPU, fp32 on CPU)"),
    ("SERVE_DEVICE", "cuda if available else cpu", "torch device for every worker (GPUs are shared round-robin)"),
    ("SERVE_TORCH_THREADS", "CPUs / workers", "intra-op threads per worker on CPU"),
    ("SERVE_HTTP_THREADS", "32", "request threads per worker (they wait on inference; /ping needs a free one)"),
    ("SERVE_LOG_LEVEL", "info", "debug|info|warning|error"),
)


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use."""


@dataclass(frozen=True)
class ServeSettings:
    model_dir: Path = Path("/opt/ml/model")
    port: int = 8080
    #: None: decided from the hardware by ``resolve_workers``.
    workers: int | None = None
    timeout_s: float = 60.0
    max_payload_bytes: int = 6 * 1024 * 1024
    batch_mode: bool = False
    batch_strategy: str = "MultiRecord"
    max_concurrent_transforms: int | None = None
    default_accept: str | None = None
    max_image_pixels: int = 2048 * 2048
    max_images: int = 64
    #: None: per-device default (see ``batching_defaults``).
    max_batch_size: int | None = None
    max_batch_delay_ms: float | None = None
    precision: str = "auto"
    device: str | None = None
    torch_threads: int | None = None
    http_threads: int = 32
    log_level: str = "info"

    @property
    def max_payload_mb(self) -> int:
        return max(1, -(-self.max_payload_bytes // (1024 * 1024)))

    def with_workers(self, workers: int) -> ServeSettings:
        return replace(self, workers=workers)


def _get(env: Mapping[str, str], *names: str) -> tuple[str, str] | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip() != "":
            return name, value.strip()
    return None


def _number(env: Mapping[str, str], names: tuple[str, ...], kind: type, default: float | None,
            low: float, high: float) -> float | None:
    found = _get(env, *names)
    if found is None:
        return default
    name, raw = found
    noun, rule = ("an integer", f"a whole number in [{low}, {high}]") if kind is int else (
        "a number", f"a value in [{low}, {high}]")
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not {noun}; expected {rule}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range; expected {rule}")
    return value


def _int(env: Mapping[str, str], *names: str, default: int | None, low: int, high: int) -> int | None:
    return _number(env, names, int, default, low, high)


def _float(env: Mapping[str, str], name: str, default: float | None, low: float, high: float) -> float | None:
    return _number(env, (name,), float, default, low, high)


def _bool(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}={env[name]!r} is not a boolean; use true or false (any case)")


def _choice(env: Mapping[str, str], name: str, default: str, choices: Mapping[str, str]) -> str:
    found = _get(env, name)
    if found is None:
        return default
    try:
        return choices[found[1].lower()]
    except KeyError:
        raise SettingsError(f"{name}={found[1]!r} is not one of {sorted(set(choices.values()))}") from None


def settings_from_env(env: Mapping[str, str] | None = None) -> ServeSettings:
    """Parse the serving environment (``os.environ`` by default) once, failing loudly on bad values."""
    env = os.environ if env is None else env
    batch_mode = _bool(env, "SAGEMAKER_BATCH")
    # Batch transform allows up to 100 MB per request and 600 s per invocation by default.
    payload_mb = _int(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", default=6, low=1, high=100)
    timeout = _int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS",
                   "MODEL_SERVER_TIMEOUT", default=600 if batch_mode else 60, low=1, high=3600)
    accept = _get(env, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
    device = _get(env, "SERVE_DEVICE")
    if device is not None and device[1].split(":")[0] not in ("cpu", "cuda"):
        raise SettingsError(f"SERVE_DEVICE={device[1]!r} must be cpu, cuda or cuda:<index>")
    model_dir = _get(env, "SM_MODEL_DIR")
    return ServeSettings(
        model_dir=Path(model_dir[1]) if model_dir else Path("/opt/ml/model"),
        port=_int(env, "SAGEMAKER_BIND_TO_PORT", default=8080, low=1, high=65535),
        workers=_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS", default=None, low=1, high=256),
        timeout_s=float(timeout),
        max_payload_bytes=payload_mb * 1024 * 1024,
        batch_mode=batch_mode,
        batch_strategy=_choice(env, "SAGEMAKER_BATCH_STRATEGY", "MultiRecord", BATCH_STRATEGIES),
        max_concurrent_transforms=_int(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", default=None, low=1, high=1024),
        default_accept=accept[1] if accept else None,
        max_image_pixels=_int(env, "SERVE_MAX_IMAGE_PIXELS", default=2048 * 2048, low=1, high=1 << 28),
        max_images=_int(env, "SERVE_MAX_IMAGES", default=64, low=1, high=4096),
        max_batch_size=_int(env, "SERVE_MAX_BATCH_SIZE", default=None, low=1, high=1024),
        max_batch_delay_ms=_float(env, "SERVE_MAX_BATCH_DELAY_MS", None, 0.0, 1000.0),
        precision=_choice(env, "SERVE_PRECISION", "auto", {p: p for p in PRECISIONS}),
        device=device[1] if device else None,
        torch_threads=_int(env, "SERVE_TORCH_THREADS", default=None, low=1, high=1024),
        http_threads=_int(env, "SERVE_HTTP_THREADS", default=32, low=2, high=1024),
        log_level=_choice(env, "SERVE_LOG_LEVEL", "info", {x: x for x in ("debug", "info", "warning", "error")}),
    )


def batching_defaults(device_type: str) -> tuple[int, float]:
    """(max batch size, max delay ms) for a device when the environment does not say.

    Measured on the 2-core CPU (docs/perf-notes.md): larger batches are slower per image there, so CPU
    does not batch. GPUs gain throughput from batches; a few milliseconds of waiting is cheap there.
    """
    return (8, 5.0) if device_type == "cuda" else (1, 0.0)
