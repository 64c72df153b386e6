"""``serve``: run gunicorn (gthread workers) around ``serve.app`` in this process, which is PID 1.

Layout, from measurements on a 2-core CPU and the SageMaker contract:
- gthread workers: many HTTP threads per worker, one inference thread. Request threads wait on the
  inference thread, so /ping is answered by a free HTTP thread while every worker is busy predicting
  (measured: sync workers, one request at a time each, let /ping wait behind inference: p99 559 ms).
- The master imports torch/flask before forking (shared pages, faster worker boot) but touches no device:
  each worker loads the model, picks its GPU round-robin or its share of CPU threads and warms up before
  it accepts its first connection, so /ping is only ever answered by a ready worker. A worker that
  cannot load the model fails to boot, which halts the master: the container exits non-zero (3) with
  the reason logged. Measured on a 2-core CPU (256 x 256, 2 workers): a master that never imports torch
  holds ~28 MB instead of ~230 MB of RSS, but the container's physical memory (PSS, cgroup) grew ~120-130 MB,
  as the workers no longer share torch's relocated libraries and module objects copy-on-write, and the two
  workers then import torch at once on two cores (1.3-1.8 s each against ~0.9 s alone): importing here wins.
- Each worker logs a startup timeline (container/timeline.py): seconds since the serve process started, per
  step, from the master's imports to the worker accepting connections.
- Workers keep /invocations load within one request of each other by closing a keep-alive connection of the
  busier one (container/balance.py): connections stick to the worker that accepted them.
- SIGTERM (SageMaker scale-in, then SIGKILL 30 s later): gunicorn stops accepting and lets in-flight
  requests finish within ``GRACEFUL_TIMEOUT_S``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from container.balance import NOT_ACCEPTING, ConnectionBalancer, free_slot, shared_loads
from container.timeline import StartupTimeline
from serve.settings import MAX_DEFAULT_CPU_WORKERS, VARIABLES, ServeSettings, SettingsError, settings_from_env

log = logging.getLogger("serve")

#: Must be below SageMaker's 30 s SIGTERM->SIGKILL window, with room for the master to exit.
GRACEFUL_TIMEOUT_S = 25
#: Connections the kernel queues per listening socket (gunicorn's default).
LISTEN_BACKLOG = 2048
#: Longest a worker may take to load and warm the model before gunicorn's master kills it.
WORKER_LOAD_TIMEOUT_S = 300


class _LogFormatter(logging.Formatter):
    """Access lines (logger ``serve.access``) bare, so each is one JSON document: CloudWatch Logs metric
    filters with JSON patterns only match events that are JSON as a whole. Everything else prefixed."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage() if record.name == "serve.access" else super().format(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_LogFormatter("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def gpu_count() -> int:
    """GPUs visible to us, counted through NVML so the master does not initialise CUDA before forking."""
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def cpu_count() -> int:
    from model.runtime import available_cpus

    return available_cpus()


def resolve_workers(settings: ServeSettings, gpus: int, cpus: int) -> int:
    if settings.workers is not None:
        return settings.workers
    if gpus and (settings.device is None or settings.device.startswith("cuda")):
        return gpus
    return max(1, min(cpus, MAX_DEFAULT_CPU_WORKERS))


def worker_device(settings: ServeSettings, worker_index: int, gpus: int) -> str:
    """Round-robin GPU per worker (``cuda:i``), or the configured device."""
    if settings.device == "cpu" or (settings.device is None and gpus == 0):
        return "cpu"
    if settings.device not in (None, "cuda"):
        return settings.device  # an explicit cuda:N pins every worker
    return f"cuda:{worker_index % max(gpus, 1)}"


#: glibc's mallopt parameter for the most malloc arenas (mallopt(3): the same as MALLOC_ARENA_MAX).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def limit_malloc_arenas(libc: Any = None) -> bool:
    """Cap glibc's malloc arenas in the master, before forking: every worker inherits the cap.

    With 32 HTTP threads per worker glibc opens up to 8 arenas per core, and freed request memory stays spread
    over them: in a 10-minute soak (bench/soak.py) worker RSS rose +8 MiB/min; with 2 arenas it stayed flat
    (465 -> 489 MiB, slope -0.9 MiB/min) at the same throughput. MALLOC_ARENA_MAX in the environment wins.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        if libc is None:
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS))
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False


def fit_to_memory(settings: ServeSettings, workers: int, on_cpu: bool, explicit: bool, memory: int | None
                  ) -> ServeSettings:
    """On CPU, lower the default pixel limits to what the container's memory affords ``workers`` workers.

    Settings the user gave (SERVE_MAX_IMAGE_PIXELS, SERVE_WORKER_MAX_PIXELS) are kept as given; GPU workers hold
    activations in GPU memory, so they are left alone too.
    """
    from serve.memory import affordable_pixels

    if not on_cpu or explicit or memory is None:
        return settings
    fit = affordable_pixels(memory, workers)
    if fit >= settings.worker_pixels:
        return settings
    log.warning("%.1f GiB of memory for %d worker(s): images up to %d pixels (SERVE_MAX_IMAGE_PIXELS), %d in flight "
                "per worker (SERVE_WORKER_MAX_PIXELS); set them, or fewer workers, to change this",
                memory / 2**30, workers, min(settings.max_image_pixels, fit), fit)
    return replace(settings, max_image_pixels=min(settings.max_image_pixels, fit), worker_max_pixels=fit)


def torch_threads(settings: ServeSettings, workers: int, cpus: int) -> int:
    # Oversubscription (every worker at cores threads) measured 0.24-0.37x: give each worker its share.
    return settings.torch_threads or max(1, cpus // workers)


def load_predictor(settings: ServeSettings, device: str, threads: int, metrics: Any,
                   timeline: StartupTimeline | None = None) -> tuple[Any, Any]:
    """Load and warm the model in this worker; raise (the worker then fails to boot) if it cannot be loaded."""
    from serve.batching import make_batcher
    from serve.predictor import Predictor

    start = time.perf_counter()
    try:
        predictor = Predictor.from_model_dir(
            settings.model_dir, device=device, precision=settings.precision, cpu_threads=threads
        )
        batcher = make_batcher(predictor, settings, metrics)
        if timeline:
            timeline.mark("model loaded")
        warm = predictor.warm_up(batch_sizes=sorted({1, batcher.max_batch_size}))
        if timeline:
            timeline.mark("warm")
    except Exception as exc:
        log.error("cannot load the model from %s: %s", settings.model_dir, exc)
        raise
    log.info("model ready in %.2f s (warm-up %.2f s): %s", time.perf_counter() - start, warm, predictor.describe())
    return predictor, batcher.start()


def shared_listener(port: int, backlog: int = LISTEN_BACKLOG) -> int:
    """The master's listening socket on 0.0.0.0:``port`` with SO_REUSEPORT, as a bare fd for ``fd://`` binding.

    Every worker inherits it but polls it only once its model is warm (gunicorn starts accepting after the
    app loads). It carries SO_REUSEPORT so that workers' own listeners can join its group (``own_listener``).
    We open it ourselves because gunicorn's own ``reuse_port`` makes each worker bind a fresh socket right
    after fork, before loading: the kernel then routed new connections to a worker that could not answer
    for the whole model load (issue 10, defect 4).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("0.0.0.0", port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock.detach()  # gunicorn takes ownership of the fd


def own_listener(shared: list[Any], backlog: int) -> list[socket.socket]:
    """A per-worker SO_REUSEPORT listener on the shared address, so the kernel spreads new connections.

    With one shared socket, the worker that wins the accept race can take every connection of a burst
    (measured: all 16 keep-alive clients on one worker, half the throughput). Sockets in a REUSEPORT group
    get connections by hash; the shared socket stays in the group and every worker keeps polling it. Opened
    only once the worker's model is warm (post_worker_init): from its first moment in the group the kernel
    hands it connections.
    """
    if not hasattr(socket, "SO_REUSEPORT") or len(shared) != 1:
        return []
    try:
        host, port = shared[0].getsockname()[:2]
        sock = socket.socket(shared[0].family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        return [sock]
    except OSError as exc:
        log.warning("no per-worker listener (%s); connections may spread unevenly over workers", exc)
        return []


def gunicorn_options(settings: ServeSettings, workers: int, listener_fd: int) -> dict[str, Any]:
    return {
        "bind": [f"fd://{listener_fd}"],  # shared_listener: 0.0.0.0:port
        "backlog": LISTEN_BACKLOG,
        "workers": workers,
        "worker_class": "gthread",
        "threads": settings.http_threads,
        # gthread's timeout is a heartbeat of the worker's event loop (not per request) that also bounds
        # the model load: generous, so a big model never gets a healthy worker killed. Requests time out
        # in the app (SAGEMAKER_MODEL_SERVER_TIMEOUT).
        "timeout": max(int(settings.timeout_s) + 60, WORKER_LOAD_TIMEOUT_S),
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        # SageMaker keeps connections open between calls; closing them early only costs reconnects.
        "keepalive": 20,
        "preload_app": False,
        "accesslog": None,  # the app writes one structured line per request instead
        "errorlog": "-",
        "loglevel": settings.log_level,
        "proc_name": "serve",
        "worker_tmp_dir": "/dev/shm" if os.path.isdir("/dev/shm") else None,
        "forwarded_allow_ips": "127.0.0.1",
        "reuse_port": False,  # see shared_listener
        # A runtime-management socket under $HOME is an extra attack surface we do not use.
        "control_socket_disable": True,
    }


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
    from model.artifact import META_FILE, WEIGHTS_FILE

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
    if not gpus and settings.device is None:
        from model.runtime import cuda_fallback_note

        if note := cuda_fallback_note():
            log.warning("%s", note)
    workers = resolve_workers(settings, gpus, cpus)
    settings = settings.with_workers(workers)
    from serve.memory import container_memory

    settings = fit_to_memory(settings, workers, worker_device(settings, 0, gpus) == "cpu",
                             settings.explicit_pixel_limits, container_memory())
    prepare_metrics_dir()

    # Imported after PROMETHEUS_MULTIPROC_DIR is set; before forking so workers share the pages.
    from gunicorn.app.base import BaseApplication
    from gunicorn.errors import HaltServer
    from prometheus_client import multiprocess

    from serve.app import create_app
    from serve.metrics import ServeMetrics

    timeline.mark("imports")
    threads = torch_threads(settings, workers, cpus)
    log.info(
        "serving %s on 0.0.0.0:%d: %d worker(s) x %d HTTP threads, %s torch thread(s) each, gpus=%d",
        settings.model_dir, settings.port, workers, settings.http_threads, threads if not gpus else "-", gpus,
    )

    limit_malloc_arenas()
    try:
        listener_fd = shared_listener(settings.port)
    except OSError as exc:
        log.error("cannot serve: cannot listen on 0.0.0.0:%d (%s)", settings.port, exc)
        sys.exit(2)
    timeline.mark("listening")

    # Twice the workers: a replacement can be forked while the worker it replaces is still being reaped.
    loads = shared_loads(2 * workers)

    def assign_slot(arbiter: Any, worker: Any) -> None:  # in the master, before fork
        worker.slot = free_slot(loads, (getattr(w, "slot", None) for w in arbiter.WORKERS.values()))

    def release_slot(worker: Any) -> None:  # in the master, once the worker is gone
        if getattr(worker, "slot", None) is not None:
            loads[worker.slot] = NOT_ACCEPTING

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in gunicorn_options(settings, workers, listener_fd).items():
                self.cfg.set(key, value)
            self.cfg.set("child_exit", lambda _arbiter, worker: (multiprocess.mark_process_dead(worker.pid),
                                                                 release_slot(worker)))
            self.cfg.set("pre_fork", assign_slot)
            self.cfg.set("post_fork", self._post_fork)
            self.cfg.set("post_worker_init", self._post_worker_init)

        def _post_fork(self, _arbiter: Any, worker: Any) -> None:
            # worker.age counts spawned workers from 1: a replacement worker takes the next GPU in turn.
            self.worker_index = worker.age - 1
            self.slot = worker.slot
            timeline.mark("forked")

        def _post_worker_init(self, worker: Any) -> None:
            # Only now, with the model loaded and warm: a listener in the SO_REUSEPORT group gets its share of
            # new connections from the kernel at once, so one opened before loading (in post_fork) made a
            # replacement worker hold pings it could not answer until loaded (issue 10, defect 4).
            worker.sockets = [*worker.sockets, *own_listener(worker.sockets, self.cfg.backlog)]
            if self.balancer is not None:
                self.balancer.ready()
            timeline.mark("accepting")
            log.info("startup timeline (s since the serve process started): %s", timeline.line())

        def load(self) -> Any:
            # Runs in each worker after fork, before the worker accepts connections: a worker that is
            # still loading never answers, so once /ping has said 200 it never says 503 for a sibling
            # that is warming up (connections wait in the shared listen backlog for a ready worker).
            metrics = ServeMetrics()
            device = worker_device(settings, getattr(self, "worker_index", 0), gpus)
            predictor, batcher = load_predictor(settings, device, threads, metrics, timeline)
            app = create_app(predictor, batcher, settings, metrics)
            slot = getattr(self, "slot", None)
            self.balancer = ConnectionBalancer(app, loads, slot) if slot is not None and workers > 1 else None
            return self.balancer or app

    try:
        Server().run()
    except HaltServer as exc:  # raised again while stopping when several workers fail to boot at once
        log.error("serving stopped: %s", exc.reason)
        sys.exit(exc.exit_status)
