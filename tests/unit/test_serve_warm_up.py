"""What the serving warm-up runs before a worker accepts: every batch shape the batcher can form on a GPU (cuDNN
autotunes each new shape on first sight), only the smallest and largest on CPU (no autotuning there)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from serve.predictor import Predictor, warm_up_batch_sizes
from tests.integration.serve_support import make_tiny_model_dir


@pytest.fixture
def predictor(tmp_path):
    return Predictor.from_model_dir(make_tiny_model_dir(tmp_path), device="cpu", cpu_threads=1)


def _shapes_seen(predictor: Predictor, monkeypatch) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    monkeypatch.setattr(predictor, "forward", lambda batch: seen.append(tuple(batch.shape)))
    return seen


def test_on_cpu_a_small_image_at_one_and_the_largest_batch(predictor, monkeypatch):
    seen = _shapes_seen(predictor, monkeypatch)
    predictor.warm_up(warm_up_batch_sizes(8, predictor.runtime.is_cuda))
    assert [shape[0] for shape in seen] == [1, 8]
    size = min(int(predictor.preprocessing.get("image_size", 256)), 64)
    assert {shape[-2:] for shape in seen} == {(size, size)}


def test_on_a_gpu_every_batch_size_up_to_the_largest_at_the_training_size(predictor, monkeypatch):
    # The GPU's runtime without a GPU: the network is never run (forward is recorded), nothing is synchronised.
    predictor.runtime = replace(predictor.runtime, device=torch.device("cuda", 0))
    monkeypatch.setattr(predictor, "prepare", lambda image: torch.zeros(3, *image.shape[:2]))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    seen = _shapes_seen(predictor, monkeypatch)
    predictor.warm_up(warm_up_batch_sizes(8, predictor.runtime.is_cuda))
    size = int(predictor.preprocessing.get("image_size", 256))
    assert seen == [(n, 3, size, size) for n in range(1, 9)]


def test_explicit_batch_sizes_are_run_as_given(predictor, monkeypatch):
    seen = _shapes_seen(predictor, monkeypatch)
    predictor.warm_up(batch_sizes=(2, 3), rounds=2)
    assert [shape[0] for shape in seen] == [2, 2, 3, 3]


def test_a_large_gpu_batch_limit_warms_every_small_size_then_powers_of_two():
    assert warm_up_batch_sizes(8, on_gpu=True) == list(range(1, 9))
    assert warm_up_batch_sizes(100, on_gpu=True) == [*range(1, 17), 32, 64, 100]
    assert warm_up_batch_sizes(1024, on_gpu=False) == [1, 1024]
    assert warm_up_batch_sizes(1, on_gpu=True) == [1]
