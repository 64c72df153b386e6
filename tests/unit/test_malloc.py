"""container/malloc.py: glibc tuning for serving and training processes."""

from __future__ import annotations

from pathlib import Path


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_malloc_is_tuned_unless_the_environment_says():
    from container.malloc import MALLOC_ARENAS, MMAP_THRESHOLD, TRIM_THRESHOLD, tune_malloc

    libc, env = FakeLibc(), {}
    thresholds = [f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}", f"MALLOC_TRIM_THRESHOLD_={TRIM_THRESHOLD}"]
    assert tune_malloc(arenas=True, libc=libc, environ=env) == [f"MALLOC_ARENA_MAX={MALLOC_ARENAS}", *thresholds]
    assert libc.calls == [(-8, MALLOC_ARENAS), (-3, MMAP_THRESHOLD), (-1, TRIM_THRESHOLD)]  # mallopt(3)
    assert env == {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
                   "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD)}  # for the processes it starts
    libc = FakeLibc()
    assert tune_malloc(arenas=True, libc=libc, environ={"MALLOC_ARENA_MAX": "4"}) == thresholds
    assert (-8, MALLOC_ARENAS) not in libc.calls
    libc = FakeLibc()
    assert len(tune_malloc(arenas=False, libc=libc, environ={})) == 2 and (-8, MALLOC_ARENAS) not in libc.calls
    assert tune_malloc(arenas=True, libc=libc, environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=1"}) == []
    assert tune_malloc(arenas=True, libc=object(), environ={}) == []  # no mallopt: not glibc


def test_the_real_libc_accepts_the_tuning_in_a_fresh_process():
    import subprocess
    import sys

    code = "from container.malloc import tune_malloc; print(len(tune_malloc(arenas=True, environ={})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
