"""Prometheus metrics. Under gunicorn every worker writes to PROMETHEUS_MULTIPROC_DIR (set by the
launcher before prometheus_client is imported) and /metrics merges all workers' files."""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class ServeMetrics:
    """The server's metrics, registered in their own registry (so apps in one test process don't clash)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "serve_requests", "HTTP requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "serve_request_seconds", "Request latency by route", ["route"], buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.images = Counter("serve_images", "Images predicted", registry=self.registry)
        self.batch_size = Histogram(
            "serve_batch_size", "Images per forward pass", buckets=_BATCH_BUCKETS, registry=self.registry
        )

    def render(self) -> bytes:
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory and os.path.isdir(directory):
            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged, path=directory)
            return generate_latest(merged)
        return generate_latest(self.registry)
