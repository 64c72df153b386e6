"""How many pixels a CPU worker can afford, from the memory the container may use.

Measured for the default U-Net (fp32, CPU, 1 thread, tests/ and README): a request costs 1.09-1.14 KB per
pixel in flight (decoded image, model input, activations, output, answer bytes), and an idle worker holds
~330 MiB. With the pixel budget (serve.budget) that makes a worker's worst case
``WORKER_BASE_BYTES + (lanes - 1) * LANE_BODIES_BYTES + SERVE_WORKER_MAX_PIXELS * BYTES_PER_PIXEL``.
"""

from __future__ import annotations

from pathlib import Path

BYTES_PER_PIXEL = 1200
#: An idle worker (~330 MiB measured) plus request bodies in flight (32 HTTP threads x 6 MiB).
WORKER_BASE_BYTES = 640 << 20
#: Each further inference thread brings 32 more HTTP threads, so 32 more 6 MiB bodies may be in flight.
LANE_BODIES_BYTES = 192 << 20
#: Share of the container's memory the workers may plan to use (the master and the page cache need the rest).
USABLE_SHARE = 0.85
_CGROUP_FILES = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def container_memory(meminfo: Path = Path("/proc/meminfo"), cgroup_files: tuple[Path, ...] = _CGROUP_FILES
                     ) -> int | None:
    """Bytes this container may use: its cgroup limit if it has one, else the host's memory."""
    host = None
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                host = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    for path in cgroup_files:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and (host is None or int(raw) < host):
            return int(raw)
    return host


def base_bytes(lanes: int = 1) -> int:
    """A worker's memory before any pixel is in flight, with ``lanes`` inference threads."""
    return WORKER_BASE_BYTES + (max(1, lanes) - 1) * LANE_BODIES_BYTES


def affordable_pixels(memory: int, workers: int, lanes: int = 1) -> int:
    """Pixels in flight each of ``workers`` (of ``lanes`` inference threads) can hold within ``memory`` bytes (at
    least one 256 x 256 image)."""
    per_worker = memory * USABLE_SHARE / max(1, workers) - base_bytes(lanes)
    return max(256 * 256, int(per_worker // BYTES_PER_PIXEL))


def worst_case_bytes(worker_pixels: int, lanes: int = 1) -> int:
    return base_bytes(lanes) + worker_pixels * BYTES_PER_PIXEL
