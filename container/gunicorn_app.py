"""The gunicorn side of ``serve``: the master's listener, gunicorn's options, and the application whose
hooks load the model in each worker, join the worker to the listener group once warm and balance load.

``container.serving.main`` decides the settings; this module only wires them into gunicorn.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from container.balance import NOT_ACCEPTING, ConnectionBalancer, free_slot, shared_loads
from container.timeline import StartupTimeline
from serve.settings import ServeSettings

log = logging.getLogger("serve")

#: Must be below SageMaker's 30 s SIGTERM->SIGKILL window, with room for the master to exit.
GRACEFUL_TIMEOUT_S = 25
#: Connections the kernel queues per listening socket (gunicorn's default).
LISTEN_BACKLOG = 2048
#: Longest a worker may take to load and warm the model before gunicorn's master kills it.
WORKER_LOAD_TIMEOUT_S = 300


def _reuseport_listener(family: int, host: str, port: int, backlog: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    return sock


def shared_listener(port: int, backlog: int = LISTEN_BACKLOG) -> int:
    """The master's listening socket on 0.0.0.0:``port`` with SO_REUSEPORT, as a bare fd for ``fd://`` binding.

    Every worker inherits it but polls it only once its model is warm (gunicorn starts accepting after the
    app loads). It carries SO_REUSEPORT so that workers' own listeners can join its group (``own_listener``).
    We open it ourselves because gunicorn's own ``reuse_port`` makes each worker bind a fresh socket right
    after fork, before loading: the kernel then routed new connections to a worker that could not answer
    for the whole model load (issue 10, defect 4).
    """
    sock = _reuseport_listener(socket.AF_INET, "0.0.0.0", port, backlog)
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
        return [_reuseport_listener(shared[0].family, host, port, backlog)]
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


class Server(BaseApplication):
    """gunicorn's application: its hooks run in the master (slots) and in each worker (load, join, balance)."""

    def __init__(self, settings: ServeSettings, workers: int, gpus: int, threads: int, listener_fd: int,
                 timeline: StartupTimeline) -> None:
        self.settings, self.workers, self.gpus, self.threads = settings, workers, gpus, threads
        self.listener_fd, self.timeline = listener_fd, timeline
        # Twice the workers: a replacement can be forked while the worker it replaces is still being reaped.
        self.loads = shared_loads(2 * workers)
        self.worker_index, self.slot = 0, None
        self.balancer: ConnectionBalancer | None = None
        super().__init__()

    def load_config(self) -> None:
        for key, value in gunicorn_options(self.settings, self.workers, self.listener_fd).items():
            self.cfg.set(key, value)
        self.cfg.set("child_exit", self._child_exit)
        self.cfg.set("pre_fork", self._pre_fork)
        self.cfg.set("post_fork", self._post_fork)
        self.cfg.set("post_worker_init", self._post_worker_init)

    def _pre_fork(self, arbiter: Any, worker: Any) -> None:  # in the master
        worker.slot = free_slot(self.loads, (getattr(w, "slot", None) for w in arbiter.WORKERS.values()))

    def _child_exit(self, _arbiter: Any, worker: Any) -> None:  # in the master, once the worker is gone
        from prometheus_client import multiprocess  # reads PROMETHEUS_MULTIPROC_DIR, set by serving.main

        multiprocess.mark_process_dead(worker.pid)
        if getattr(worker, "slot", None) is not None:
            self.loads[worker.slot] = NOT_ACCEPTING

    def _post_fork(self, _arbiter: Any, worker: Any) -> None:
        # worker.age counts spawned workers from 1: a replacement worker takes the next GPU in turn.
        self.worker_index = worker.age - 1
        self.slot = worker.slot
        self.timeline.mark("forked")

    def _post_worker_init(self, worker: Any) -> None:
        # Only now, with the model loaded and warm: a listener in the SO_REUSEPORT group gets its share of
        # new connections from the kernel at once, so one opened before loading (in post_fork) made a
        # replacement worker hold pings it could not answer until loaded (issue 10, defect 4).
        # With one worker there is nothing to spread, and a listener of its own would take connections the
        # kernel resets if this worker dies: the master's socket keeps them queued for the replacement.
        if self.workers > 1:
            worker.sockets = [*worker.sockets, *own_listener(worker.sockets, self.cfg.backlog)]
        if self.balancer is not None:
            self.balancer.ready()
        self.timeline.mark("accepting")
        log.info("startup timeline (s since the serve process started): %s", self.timeline.line())

    def load(self) -> Any:
        # Runs in each worker after fork, before the worker accepts connections: a worker that is
        # still loading never answers, so once /ping has said 200 it never says 503 for a sibling
        # that is warming up (connections wait in the shared listen backlog for a ready worker).
        from container.serving import load_predictor, worker_device
        from serve.app import create_app
        from serve.metrics import ServeMetrics

        settings, metrics = self.settings, ServeMetrics()
        if self.worker_index == 0 and not self.gpus and settings.device is None:
            from model.runtime import cuda_fallback_note

            if note := cuda_fallback_note():
                log.warning("%s", note)
        device = worker_device(settings, self.worker_index, self.gpus)
        predictor, batcher = load_predictor(settings, device, self.threads, metrics, self.timeline)
        app = create_app(predictor, batcher, settings, metrics)
        if self.slot is not None and self.workers > 1:
            self.balancer = ConnectionBalancer(app, self.loads, self.slot)
        return self.balancer or app


def run_server(settings: ServeSettings, workers: int, gpus: int, threads: int, timeline: StartupTimeline) -> None:
    """Run gunicorn's master until it stops; exits the process with gunicorn's status if it halts."""
    from gunicorn.errors import HaltServer

    # After PROMETHEUS_MULTIPROC_DIR is set (the app imports prometheus_client). torch and the app are imported
    # here, before forking: workers share the pages, and a replacement for a crashed worker starts without
    # importing torch (see container.serving).
    import serve.app  # noqa: F401

    timeline.mark("imports")
    try:
        listener_fd = shared_listener(settings.port)
    except OSError as exc:
        log.error("cannot serve: cannot listen on 0.0.0.0:%d (%s)", settings.port, exc)
        sys.exit(2)
    timeline.mark("listening")
    try:
        Server(settings, workers, gpus, threads, listener_fd, timeline).run()
    except HaltServer as exc:  # raised again while stopping when several workers fail to boot at once
        log.error("serving stopped: %s", exc.reason)
        sys.exit(exc.exit_status)
