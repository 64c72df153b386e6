"""Device, precision and layout are decided in one place, per direction (training or inference)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from model import runtime as rt
from model.runtime import CPU_TRAINING_CHANNELS_LAST_MAX_PARAMETERS, select_runtime
from train.config import TrainConfig
from train.job import training_runtime


@pytest.fixture(autouse=True)
def _keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("native", "training", "expected"), [
    (True, True, torch.bfloat16), (False, True, None), (True, False, None), (False, False, None)])
def test_auto_precision_on_cpu_is_bf16_only_for_training_on_cpus_with_native_bf16(monkeypatch, native, training,
                                                                                   expected):
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: native)
    assert select_runtime("auto", device="cpu", training=training).amp_dtype is expected


def test_an_explicit_precision_wins_over_auto(monkeypatch):
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: True)
    assert select_runtime("fp32", device="cpu", training=True).amp_dtype is None
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: False)
    assert select_runtime("bf16", device="cpu").amp_dtype is torch.bfloat16


def test_training_jobs_take_the_training_decision(monkeypatch):
    monkeypatch.setattr(rt, "cpu_has_native_bf16", lambda: True)
    if torch.cuda.is_available():
        pytest.skip("decides for the GPU there")
    assert training_runtime(TrainConfig()).amp_dtype is torch.bfloat16
    assert training_runtime(TrainConfig(precision="fp32")).amp_dtype is None


def test_the_cpu_feature_probe_answers_a_bool():
    assert isinstance(rt.cpu_has_native_bf16(), bool)


def test_cpu_layout_is_channels_last_for_inference_and_for_training_only_up_to_the_measured_width():
    cpu = select_runtime("fp32", device="cpu")
    small = nn.Conv2d(3, 8, 3)
    large = nn.Linear(CPU_TRAINING_CHANNELS_LAST_MAX_PARAMETERS, 1)
    assert cpu.for_model(small, training=True).channels_last is True
    assert cpu.for_model(large, training=True).channels_last is False
    assert cpu.for_model(large, training=False).channels_last is True
    assert select_runtime("fp32", device="cpu", channels_last="false").for_model(small, training=False).channels_last \
        is False


def test_bf16_cpu_training_is_channels_last_at_any_width():
    large = nn.Linear(CPU_TRAINING_CHANNELS_LAST_MAX_PARAMETERS, 1)
    assert select_runtime("bf16", device="cpu").for_model(large, training=True).channels_last is True


def test_inference_after_bf16_cpu_training_runs_in_float32_as_serving_does():
    trained = select_runtime("bf16", device="cpu", training=True).for_model(nn.Conv2d(3, 8, 3), training=True)
    serving = trained.for_inference()
    assert (serving.amp_dtype, serving.channels_last, serving.device) == (None, True, trained.device)
