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
from typing import TYPE_CHECKING

from model.precision import PRECISIONS

if TYPE_CHECKING:
    from serve.codecs import MediaType

BATCH_STRATEGIES = {"multirecord": "MultiRecord", "multi_record": "MultiRecord",
                    "singlerecord": "SingleRecord", "single_record": "SingleRecord"}
ENDPOINT_TYPES = ("realtime", "async", "serverless")
_TRUE = {"1", "true", "yes", "on"}
MIB = 1024 * 1024
#: Default inference threads of a CPU worker: one per core, up to this many. On a 2-core CPU (256 x 256, untrained
#: U-Nets, 3 rounds of 6 s each) one process with 2 inference threads of 1 torch thread each predicted 17.2-18.1
#: images/s at 7.2 M parameters against 14.7-15.0 for 2 processes x 1 thread and 12.8-13.6 for 1 thread running
#: 2 torch threads, and 43.1-46.9 against 42.4-46.6 and 37.8-40.8 at 1.9 M; the process holds one copy of torch
#: and the weights instead of two. Capped because the measurements stop at 2 cores.
MAX_DEFAULT_CPU_LANES = 4
#: Default workers per GPU where the host has ``CPUS_PER_GPU_WORKER`` cores for each: one process's request threads
#: are the limit (H200, 256 x 256, bf16, batches of 8: one worker 1119 images/s, two 1005 + 1018, p99 20 vs 22 ms).
GPU_WORKERS_PER_GPU = 2
CPUS_PER_GPU_WORKER = 2
#: HTTP threads per inference thread by default: request threads mostly wait on inference; /ping needs a free one.
HTTP_THREADS_PER_LANE = 32
#: SageMaker's request/response limits by inference option (sagemaker-runtime API and developer guide):
#: real-time 6 MB (6291456 bytes), serverless 4 MB, async 1 GB read from S3.
PAYLOAD_LIMITS_MB = {"realtime": 6, "serverless": 4, "async": 1024}
#: Batch transform with MaxPayloadInMB=0 sends each S3 object whole; we still read at most this much.
WHOLE_OBJECT_LIMIT_MB = 1024
#: The highest SERVE_MAX_IMAGE_PIXELS accepted (the offline drift report reads images up to it).
MAX_IMAGE_PIXELS_CEILING = 1 << 28
_FALSE = {"0", "false", "no", "off", ""}

#: (name, default, meaning) for the README and --help.
VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("SAGEMAKER_BIND_TO_PORT", "8080", "port to listen on (all interfaces)"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS / MODEL_SERVER_WORKERS",
     f"{GPU_WORKERS_PER_GPU} per GPU ({CPUS_PER_GPU_WORKER} CPUs each, else 1 per GPU), else 1",
     "gunicorn worker processes (on CPU one worker's inference threads use the cores)"),
    ("SERVE_INFERENCE_THREADS", f"1 on GPU; on CPU min(CPUs, {MAX_DEFAULT_CPU_LANES}) / workers",
     "inference threads per worker: each runs its own forward passes, all take requests from the worker's queue"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT / MODEL_SERVER_TIMEOUT", "60 (600 in batch transform)",
     "seconds a request may wait for its prediction"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", "6 (4 serverless, 1024 async)",
     f"largest request body (MiB), larger -> 413; 0 in batch transform = whole object (read up to "
     f"{WHOLE_OBJECT_LIMIT_MB})"),
    ("SAGEMAKER_BATCH", "false", "set by batch transform (any case of true/false)"),
    ("SERVE_ENDPOINT_TYPE", "realtime", "realtime|async|serverless: sets the payload, answer and timeout limits"),
    ("SAGEMAKER_BATCH_STRATEGY", "MultiRecord", "BatchStrategy reported by /execution-parameters"),
    ("SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", "workers", "MaxConcurrentTransforms reported by /execution-parameters"),
    ("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "(per request type)", "response type for a missing or */* Accept"),
    ("SM_MODEL_DIR", "/opt/ml/model", "model directory (read only)"),
    ("SERVE_MAX_IMAGE_PIXELS", "4194304 (1048576 serverless)", "largest H*W of one image; larger -> 400"),
    ("SERVE_MAX_IMAGES", "64 (no limit in batch transform and async)", "most images in one request; more -> 400"),
    ("SERVE_MAX_REQUEST_PIXELS", "16777216 (no limit in batch transform and async)",
     "most decoded pixels (sum of H*W) in one request; more -> 400"),
    ("SERVE_MAX_RESPONSE_MB", "6 (4 serverless; no limit in batch transform and async)",
     "largest answer (MiB); larger -> 400 naming a smaller Accept type"),
    ("SERVE_WORKER_MAX_PIXELS", "SERVE_MAX_IMAGE_PIXELS x inference threads",
     "pixels one worker decodes and predicts at once, over all its requests (they wait for room)"),
    ("SERVE_MAX_BATCH_SIZE", "1 on CPU, 8 on GPU", "dynamic batching: most images in one forward pass"),
    ("SERVE_MAX_BATCH_DELAY_MS", "0 on CPU, 5 on GPU", "dynamic batching: longest wait for a batch to fill"),
    ("SERVE_PRECISION", "auto", "auto|fp32|bf16|fp16 (auto: bf16/fp16 autocast on GPU, fp32 on CPU)"),
    ("SERVE_DEVICE", "cuda if available else cpu", "torch device for every worker (GPUs are shared round-robin)"),
    ("SERVE_TORCH_THREADS", "CPUs / (workers x inference threads)", "intra-op threads per inference thread on CPU"),
    ("SERVE_HTTP_THREADS", f"{HTTP_THREADS_PER_LANE} x inference threads",
     "request threads per worker (they wait on inference; /ping needs a free one)"),
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
    #: Inference threads per worker; None: decided from the hardware by ``resolve_lanes``.
    inference_threads: int | None = None
    timeout_s: float = 60.0
    max_payload_bytes: int = 6 * MIB
    batch_mode: bool = False
    endpoint_type: str = "realtime"
    batch_strategy: str = "MultiRecord"
    max_concurrent_transforms: int | None = None
    default_accept: str | None = None
    max_image_pixels: int = 2048 * 2048
    #: None: no limit (batch transform and async, where the payload limit bounds the count).
    max_images: int | None = 64
    max_request_pixels: int | None = 4 * 2048 * 2048
    max_response_bytes: int | None = 6 * MIB
    #: None: one largest image (``max_image_pixels``) per inference thread.
    worker_max_pixels: int | None = None
    #: None: per-device default (see ``serve.batching.batching_defaults``).
    max_batch_size: int | None = None
    max_batch_delay_ms: float | None = None
    precision: str = "auto"
    device: str | None = None
    torch_threads: int | None = None
    #: None: ``HTTP_THREADS_PER_LANE`` per inference thread.
    http_threads: int | None = None
    log_level: str = "info"

    #: What /execution-parameters reports (0: whole object); None: derived from ``max_payload_bytes``.
    reported_payload_mb: int | None = None
    #: SERVE_MAX_IMAGE_PIXELS or SERVE_WORKER_MAX_PIXELS was set: the launcher keeps them rather than fit
    #: them to the container's memory.
    explicit_pixel_limits: bool = False

    def __post_init__(self) -> None:
        _ = self.default_answer_type  # parsed here, so a bad SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT stops start-up

    @property
    def default_answer_type(self) -> MediaType | None:
        """The parsed SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT; SettingsError if it is not a type we answer in."""
        if self.default_accept is None:
            return None
        # Imported only when the variable is set: media-type parsing pulls in werkzeug (~70 ms), which the
        # serving master otherwise does not need to start.
        from serve.codecs import ANSWER_TYPES, answer_type

        try:
            return answer_type(self.default_accept)
        except ValueError:
            raise SettingsError(
                f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={self.default_accept!r} is not one of {list(ANSWER_TYPES)}"
            ) from None

    @property
    def max_payload_mb(self) -> int:
        if self.reported_payload_mb is not None:
            return self.reported_payload_mb
        return max(1, -(-self.max_payload_bytes // MIB))

    @property
    def worker_pixels(self) -> int:
        return self.worker_max_pixels or self.max_image_pixels * (self.inference_threads or 1)

    @property
    def full_answers(self) -> bool:
        """Answers go to S3 (batch transform, async): the module's ``full_answers`` for these settings."""
        return full_answers(self.batch_mode, self.endpoint_type)

    def with_workers(self, workers: int, lanes: int = 1) -> ServeSettings:
        """These settings with the process layout resolved: ``workers`` processes of ``lanes`` inference threads."""
        return replace(self, workers=workers, inference_threads=lanes,
                       http_threads=self.http_threads or HTTP_THREADS_PER_LANE * lanes)


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


def _optional_limit(env: Mapping[str, str], name: str, default: int | None, scale: int, high: int) -> int | None:
    """A size limit where 0 means none; ``default`` None: no limit unless set."""
    value = _int(env, name, default=None, low=0, high=high)
    if value is None:
        return default
    return value * scale if value else None


def _payload(env: Mapping[str, str], batch_mode: bool, endpoint_type: str) -> tuple[int, int | None]:
    """(body limit in bytes, MaxPayloadInMB to report or None) from SAGEMAKER_MAX_PAYLOAD_IN_MB."""
    high = PAYLOAD_LIMITS_MB["async"] if endpoint_type == "async" and not batch_mode else 100
    mb = _int(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", default=None, low=0 if batch_mode else 1, high=high)
    if mb is None:
        return (6 if batch_mode else PAYLOAD_LIMITS_MB[endpoint_type]) * MIB, None
    if mb == 0:  # batch transform: the whole S3 object in one request (chunked)
        return WHOLE_OBJECT_LIMIT_MB * MIB, 0
    return mb * MIB, None


def full_answers(batch_mode: bool, endpoint_type: str) -> bool:
    """Batch transform and async write answers to S3: no response size limit applies, and no image count or
    request pixel limit by default (the payload limit bounds them)."""
    return batch_mode or endpoint_type == "async"


def settings_from_env(env: Mapping[str, str] | None = None) -> ServeSettings:
    """Parse the serving environment (``os.environ`` by default) once, failing loudly on bad values."""
    env = os.environ if env is None else env
    batch_mode = _bool(env, "SAGEMAKER_BATCH")
    endpoint_type = _choice(env, "SERVE_ENDPOINT_TYPE", "realtime", {t: t for t in ENDPOINT_TYPES})
    unlimited = full_answers(batch_mode, endpoint_type)
    payload_bytes, reported_mb = _payload(env, batch_mode, endpoint_type)
    # Batch transform allows 600 s per invocation by default, async 900 s (up to 3600 for both).
    timeout = _int(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", "SAGEMAKER_MODEL_SERVER_TIMEOUT_SECONDS",
                   "MODEL_SERVER_TIMEOUT", default=600 if batch_mode else 900 if endpoint_type == "async" else 60,
                   low=1, high=3600)
    accept = _get(env, "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT")
    device = _get(env, "SERVE_DEVICE")
    if device is not None and device[1].split(":")[0] not in ("cpu", "cuda"):
        raise SettingsError(f"SERVE_DEVICE={device[1]!r} must be cpu, cuda or cuda:<index>")
    model_dir = _get(env, "SM_MODEL_DIR")
    serverless = endpoint_type == "serverless"
    # Serverless: 1-6 GB for the whole container, so one worker and images up to 1024 x 1024 by default
    # (the default U-Net needs ~1.2 KB per pixel in flight on CPU: see the README's memory section).
    max_image_pixels = _int(env, "SERVE_MAX_IMAGE_PIXELS", default=(1024 if serverless else 2048) ** 2, low=1,
                            high=MAX_IMAGE_PIXELS_CEILING)
    worker_pixels = _int(env, "SERVE_WORKER_MAX_PIXELS", default=None, low=1, high=1 << 30)
    if worker_pixels is not None and worker_pixels < max_image_pixels:
        raise SettingsError(
            f"SERVE_WORKER_MAX_PIXELS={worker_pixels} is below SERVE_MAX_IMAGE_PIXELS={max_image_pixels}: the "
            "largest allowed image could never be predicted; raise it or lower SERVE_MAX_IMAGE_PIXELS"
        )
    response_default = None if unlimited else PAYLOAD_LIMITS_MB[endpoint_type] * MIB
    return ServeSettings(
        model_dir=Path(model_dir[1]) if model_dir else Path("/opt/ml/model"),
        port=_int(env, "SAGEMAKER_BIND_TO_PORT", default=8080, low=1, high=65535),
        workers=_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", "MODEL_SERVER_WORKERS", default=1 if serverless else None,
                     low=1, high=256),
        timeout_s=float(timeout),
        max_payload_bytes=payload_bytes,
        reported_payload_mb=reported_mb,
        batch_mode=batch_mode,
        endpoint_type=endpoint_type,
        batch_strategy=_choice(env, "SAGEMAKER_BATCH_STRATEGY", "MultiRecord", BATCH_STRATEGIES),
        max_concurrent_transforms=_int(env, "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS", default=None, low=1, high=1024),
        default_accept=accept[1] if accept else None,
        max_image_pixels=max_image_pixels,
        max_images=_optional_limit(env, "SERVE_MAX_IMAGES", None if unlimited else 64, 1, 1 << 24),
        max_request_pixels=_optional_limit(env, "SERVE_MAX_REQUEST_PIXELS",
                                           None if unlimited else 4 * 2048 * 2048, 1, 1 << 40),
        max_response_bytes=_optional_limit(env, "SERVE_MAX_RESPONSE_MB", response_default, MIB, 1 << 20),
        worker_max_pixels=worker_pixels,
        explicit_pixel_limits=_get(env, "SERVE_MAX_IMAGE_PIXELS", "SERVE_WORKER_MAX_PIXELS") is not None,
        max_batch_size=_int(env, "SERVE_MAX_BATCH_SIZE", default=None, low=1, high=1024),
        max_batch_delay_ms=_float(env, "SERVE_MAX_BATCH_DELAY_MS", None, 0.0, 1000.0),
        precision=_choice(env, "SERVE_PRECISION", "auto", {p: p for p in PRECISIONS}),
        device=device[1] if device else None,
        torch_threads=_int(env, "SERVE_TORCH_THREADS", default=None, low=1, high=1024),
        inference_threads=_int(env, "SERVE_INFERENCE_THREADS", default=None, low=1, high=256),
        http_threads=_int(env, "SERVE_HTTP_THREADS", default=None, low=2, high=1024),
        log_level=_choice(env, "SERVE_LOG_LEVEL", "info", {x: x for x in ("debug", "info", "warning", "error")}),
    )
