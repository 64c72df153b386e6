"""Serving folds each BatchNorm into the convolution before it: exact, on a copy, and only where it is exact."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from model.artifact import load_model_dir, save_model_dir
from model.normals.config import UNetConfig
from model.normals.family import SurfaceNormals
from serve.fusion import fold_batch_norms
from serve.predictor import Predictor


def _as_if_trained(network: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine parameters far from their initial values, as training leaves them."""
    torch.manual_seed(seed)
    network.train()
    with torch.no_grad():
        for _ in range(3):  # BatchNorm updates its running statistics in training mode
            network(torch.randn(2, 3, 32, 32) * 3 + 1)
        for m in network.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    return network.eval()


def _batch_norms(network: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in network.modules())


def _trained_unet() -> nn.Module:
    return _as_if_trained(SurfaceNormals().build(UNetConfig(base_channels=4, depth=2)))


def test_the_folded_unet_answers_as_the_unfolded_one_in_eval_mode():
    network = _trained_unet()
    folded = copy.deepcopy(network).train()  # folding puts it in eval mode itself
    count = fold_batch_norms(folded)
    x = torch.randn(2, 3, 48, 64)
    with torch.inference_mode():
        assert torch.allclose(folded(x), network(x), atol=1e-5)
    assert count == _batch_norms(network) > 0
    assert _batch_norms(folded) == 0 and not folded.training


class _StandardisedConv(nn.Conv2d):
    """A convolution whose forward is not its weights alone: folding into its weights would not be exact."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = (self.weight - self.weight.mean()) / (self.weight.std() + 1e-5)
        return self._conv_forward(x, w, self.bias)


@pytest.mark.parametrize("network", [
    nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3)),  # BatchNorm before the convolution
    nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)),  # not directly after it
    nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)),  # batch statistics
    nn.Sequential(_StandardisedConv(3, 4, 3), nn.BatchNorm2d(4)),  # a conv whose forward is its own
], ids=["bn-first", "relu-between", "no-running-stats", "conv-subclass"])
def test_pairs_that_are_not_a_plain_convolution_then_its_batchnorm_stay_as_they_are(network):
    network = _as_if_trained(network) if isinstance(network[0], nn.BatchNorm2d) else network.eval()
    types = [type(m) for m in network]
    assert fold_batch_norms(network) == 0
    assert [type(m) for m in network] == types


def test_one_and_three_dimensional_pairs_fold_too():
    for conv, bn, shape in ((nn.Conv1d(3, 4, 3), nn.BatchNorm1d(4), (2, 3, 9)),
                            (nn.Conv3d(3, 4, 3), nn.BatchNorm3d(4), (2, 3, 5, 5, 5))):
        network = nn.Sequential(conv, bn).eval()
        with torch.no_grad():
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
        folded, x = copy.deepcopy(network), torch.randn(shape)
        assert fold_batch_norms(folded) == 1 and torch.allclose(folded(x), network(x), atol=1e-5)


def test_the_predictor_serves_a_trained_model_directory_folded_with_the_same_answers(tmp_path):
    family, config = SurfaceNormals(), UNetConfig(base_channels=4, depth=2)
    save_model_dir(tmp_path, family, config, _as_if_trained(family.build(config)), family.preprocessing(config, 32))
    predictor = Predictor.from_model_dir(tmp_path, device="cpu", cpu_threads=1)
    unfolded = load_model_dir(tmp_path).network.eval()

    image = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    with torch.inference_mode():
        expected = family.from_output(unfolded(predictor.prepare(image)[None])[0], image.shape)
    assert _batch_norms(predictor.network) == 0
    assert predictor.folded_batch_norms == _batch_norms(unfolded)
    assert np.allclose(predictor.predict([image])[0], expected, atol=1e-5)


class _Residual(nn.Sequential):
    """A Sequential subclass with its own forward: its children do not run one after the other."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self[1](x) + self[0](x)


def test_a_sequential_subclass_with_its_own_forward_is_left_alone():
    torch.manual_seed(0)
    block = _Residual(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    block[1].running_mean.uniform_(-1, 1)
    x = torch.randn(1, 4, 6, 6)
    before = block(x)
    assert fold_batch_norms(block) == 0
    assert torch.allclose(block(x), before)
