"""``serve``: run gunicorn (gthread workers) around ``serve.app`` in this process, which is PID 1.

Layout, from measurements on a 2-core CPU and the SageMaker contract:
- gthread workers: many HTTP threads per worker, and inference threads ("lanes", serve/batching.py) that take
  requests from the worker's one queue. Request threads wait on the lanes, so /ping is answered by a free HTTP
  thread while every lane is busy predicting (measured: sync workers, one request at a time each, let /ping
  wait behind inference: p99 559 ms).
- On CPU the default is one worker whose lanes use the cores (one per core, one torch thread each): one copy of
  torch and the weights, and no lane idles while another has requests waiting. GPU hosts get two workers per
  GPU (one where there are fewer than 2 cores for each): one process's request threads cannot keep a GPU busy.
- The master imports torch and the app before forking, so workers share those pages copy-on-write and a
  replacement for a crashed worker is answering in a fraction of a second: on a 2-core AVX2 CPU importing torch
  alone took 1.7-2.3 s, which left the only worker's replacement answering a /ping after SageMaker's 2 s. The
  master then shows ~230 MB of RSS, but nearly all of it is shared: with one worker the container's PSS and
  cgroup memory measured no higher than with a master that never imported torch (547-561 against 564-572 MiB
  PSS under load), and with 2 workers 120-130 MB lower. A host without NVIDIA's driver library has no GPU to count.
- Each worker loads the model, picks its GPU round-robin or its share of CPU threads and warms up before
  it accepts its first connection, so /ping is only ever answered by a ready worker. A worker that
  cannot load the model fails to boot, which halts the master: the container exits non-zero (3) with
  the reason logged.
- Each worker logs a startup timeline (container/timeline.py): seconds since the serve process started, per
  step, to the worker accepting connections.
- Several workers keep /invocations load within one request of each other by closing a keep-alive connection of the
  busier one (container/balance.py): connections stick to the worker that accepted them.
- SIGTERM (SageMaker scale-in, then SIGKILL 30 s later): gunicorn stops accepting and lets in-flight
  requests finish within ``GRACEFUL_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from container.timeline import StartupTimeline
from serve.settings import (
    CPUS_PER_GPU_WORKER,
    GPU_WORKERS_PER_GPU,
    MAX_DEFAULT_CPU_LANES,
    VARIABLES,
    ServeSettings,
    SettingsError,
    settings_from_env,
)

log = logging.getLogger("serve")



class _LogFormatter(logging.Formatter):
    """Access lines (logger ``serve.access``) bare, so each is one JSON document: CloudWatch Logs metric
    filters with JSON patterns only match events that are JSON as a whole. Everything else prefixed."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage() if record.name == "serve.access" else super().format(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def nvidia_driver_present(load: Any = None) -> bool:
    """True when NVIDIA's management library (installed with the driver, mounted by the container toolkit) loads."""
    import ctypes

    try:
        (load or ctypes.CDLL)("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


def gpu_count() -> int:
    """GPUs visible to us, counted through NVML so the master does not initialise CUDA before forking.

    With a CPU build of torch, or without the driver's library, there is no GPU to use: the answer comes without
    importing torch (the master imports it later, once the settings are known to be valid).
    """
    from container.gpucheck import torch_cuda_version

    if torch_cuda_version() is None or not nvidia_driver_present():  # a CPU build of torch, or no driver
        return 0
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_count() -> int:
    from model.cpus import available_cpus

    return available_cpus()


def _on_gpus(settings: ServeSettings, gpus: int) -> bool:
    return bool(gpus) and (settings.device is None or settings.device.startswith("cuda"))


def resolve_workers(settings: ServeSettings, gpus: int, cpus: int) -> int:
    """Worker processes: as set, else two per GPU (one where the host has fewer than 2 cores for each), else
    one (its inference threads use the CPUs)."""
    if settings.workers is not None:
        return settings.workers
    if not _on_gpus(settings, gpus):
        return 1
    per_gpu = GPU_WORKERS_PER_GPU if cpus >= GPU_WORKERS_PER_GPU * CPUS_PER_GPU_WORKER * gpus else 1
    return per_gpu * gpus


def resolve_lanes(settings: ServeSettings, workers: int, gpus: int, cpus: int) -> int:
    """Inference threads per worker: as set, else one on a GPU (it batches), else the worker's share of
    ``min(cpus, MAX_DEFAULT_CPU_LANES)``."""
    if settings.inference_threads is not None:
        return settings.inference_threads
    if _on_gpus(settings, gpus):
        return 1
    return max(1, min(cpus, MAX_DEFAULT_CPU_LANES) // workers)


def worker_device(settings: ServeSettings, worker_index: int, gpus: int) -> str:
    """Round-robin GPU per worker (``cuda:i``), or the configured device."""
    if settings.device == "cpu" or (settings.device is None and gpus == 0):
        return "cpu"
    if settings.device not in (None, "cuda"):
        return settings.device  # an explicit cuda:N pins every worker
    return f"cuda:{worker_index % max(gpus, 1)}"


def fit_to_memory(settings: ServeSettings, on_cpu: bool, memory: int | None) -> ServeSettings:
    """On CPU, lower the default pixel limits to what the container's memory affords ``settings.workers`` workers
    (resolved: ``with_workers``).

    Settings the user gave (SERVE_MAX_IMAGE_PIXELS, SERVE_WORKER_MAX_PIXELS) are kept as given; GPU workers hold
    activations in GPU memory, so they are left alone too.
    """
    from serve.memory import affordable_pixels

    if not on_cpu or settings.explicit_pixel_limits or memory is None:
        return settings
    if settings.workers is None:
        raise ValueError("fit_to_memory needs the worker count resolved (ServeSettings.with_workers)")
    workers = settings.workers
    fit = affordable_pixels(memory, workers, settings.inference_threads or 1)
    if fit >= settings.worker_pixels:
        return settings
    log.warning("%.1f GiB of memory for %d worker(s): images up to %d pixels (SERVE_MAX_IMAGE_PIXELS), %d in flight "
                "per worker (SERVE_WORKER_MAX_PIXELS); set them, or fewer workers, to change this",
                memory / 2**30, workers, min(settings.max_image_pixels, fit), fit)
    return replace(settings, max_image_pixels=min(settings.max_image_pixels, fit), worker_max_pixels=fit)


def torch_threads(settings: ServeSettings, workers: int, cpus: int, lanes: int = 1) -> int:
    # Oversubscription (every worker at cores threads) measured 0.24-0.37x: give each inference thread its share.
    return settings.torch_threads or max(1, cpus // (workers * lanes))


def load_predictor(settings: ServeSettings, device: str, threads: int, metrics: Any,
                   timeline: StartupTimeline | None = None) -> tuple[Any, Any]:
    """Load and warm the model in this worker; raise (the worker then fails to boot) if it cannot be loaded."""
    from serve.batching import make_batcher
    from serve.predictor import Predictor, warm_up_batch_sizes

    start = time.perf_counter()
    try:
        predictor = Predictor.from_model_dir(
            settings.model_dir, device=device, precision=settings.precision, cpu_threads=threads
        )
        batcher = make_batcher(predictor, settings, metrics, lanes=settings.inference_threads or 1)
        if timeline:
            timeline.mark("model loaded")
        warm = predictor.warm_up(warm_up_batch_sizes(batcher.max_batch_size, predictor.runtime.is_cuda))
        if timeline:
            timeline.mark("warm")
    except Exception as exc:
        log.error("cannot load the model from %s: %s", settings.model_dir, exc)
        raise
    log.info("model ready in %.2f s (warm-up %.2f s): %s", time.perf_counter() - start, warm, predictor.describe())
    return predictor, batcher.start()


def prepare_metrics_dir() -> Path:
    """A fresh PROMETHEUS_MULTIPROC_DIR (outside /opt/ml/model), set before prometheus_client is imported."""
    directory = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="serve-metrics-"))
    if directory.exists():
        shutil.rmtree(directory)  # stale files from a previous run would be merged into /metrics
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def check_model_dir(model_dir: Path) -> None:
    """Fail in seconds, before any worker starts, when the model directory is obviously wrong."""
    from model.files import META_FILE, WEIGHTS_FILE

    missing = [name for name in (META_FILE, WEIGHTS_FILE) if not (model_dir / name).is_file()]
    if missing:
        present = sorted(p.name for p in model_dir.iterdir()) if model_dir.is_dir() else "nothing: no such directory"
        raise SettingsError(
            f"model directory {model_dir} lacks {missing} (it holds {present}); mount the output of `train` "
            "there (model.tar.gz extracted flat) or set SM_MODEL_DIR"
        )


def _parse_args(argv: list[str]) -> argparse.Namespace:
    epilog = "environment:\n" + "\n".join(f"  {n}  (default {d}): {m}" for n, d, m in VARIABLES)
    parser = argparse.ArgumentParser(
        prog="serve", description="SageMaker inference server", epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    timeline = StartupTimeline()
    _parse_args(argv)
    configure_logging(os.environ.get("SERVE_LOG_LEVEL", "info") or "info")
    try:
        settings = settings_from_env()
        configure_logging(settings.log_level)
        check_model_dir(settings.model_dir)
    except SettingsError as exc:
        log.error("cannot serve: %s", exc)
        sys.exit(2)
    gpus, cpus = gpu_count(), cpu_count()
    workers = resolve_workers(settings, gpus, cpus)
    lanes = resolve_lanes(settings, workers, gpus, cpus)
    settings = settings.with_workers(workers, lanes)
    from serve.memory import container_memory

    settings = fit_to_memory(settings, worker_device(settings, 0, gpus) == "cpu", container_memory())
    prepare_metrics_dir()

    threads = torch_threads(settings, workers, cpus, lanes)
    log.info(
        "serving %s on 0.0.0.0:%d: %d worker(s) x %d HTTP threads and %d inference thread(s) of %s torch "
        "thread(s), gpus=%d",
        settings.model_dir, settings.port, workers, settings.http_threads, lanes, threads if not gpus else "-", gpus,
    )

    from container.malloc import tune_malloc

    if tuned := tune_malloc(arenas=True):
        log.info("malloc: %s", ", ".join(tuned))
    from container.gunicorn_app import run_server  # after prepare_metrics_dir: it imports prometheus_client

    run_server(settings, workers, gpus, threads, timeline)
