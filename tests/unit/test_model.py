import numpy as np
import pytest
import torch

from model.artifact import ArtifactError, load_model_dir, save_model_dir
from model.normals.config import UNetConfig
from model.normals.family import SurfaceNormals
from model.normals.network import frame_coordinates
from model.normals.objective import AngularMetrics, cosine_loss


def test_unet_outputs_unit_normals_of_the_input_size():
    torch.manual_seed(0)
    net = SurfaceNormals().build(UNetConfig(base_channels=4, depth=3)).eval()
    out = net(torch.randn(2, 3, 32, 48))
    assert out.shape == (2, 3, 32, 48)
    assert torch.allclose(out.norm(dim=1), torch.ones(2, 32, 48), atol=1e-5)


def test_a_crop_that_brings_its_frame_coordinates_is_placed_by_them():
    torch.manual_seed(0)
    net = SurfaceNormals().build(UNetConfig(base_channels=4, depth=2, coord_channels=True)).eval()
    torch.nn.init.normal_(net.head.weight)  # away from the "facing the camera" start, where every input looks alike
    image = torch.randn(1, 3, 32, 32)
    whole_frame = frame_coordinates(torch.zeros(1, 3, 64, 64))
    own = net(image)
    assert torch.equal(net(torch.cat([image, frame_coordinates(image)], dim=1)), own)
    corner = net(torch.cat([image, whole_frame[..., :32, :32]], dim=1))
    assert not torch.allclose(corner, own, atol=1e-3)


def test_a_network_without_coordinate_channels_ignores_carried_coordinates():
    net = SurfaceNormals().build(UNetConfig(base_channels=4, depth=2, coord_channels=False)).eval()
    image = torch.randn(1, 3, 32, 32)
    assert torch.equal(net(torch.cat([image, frame_coordinates(image)], dim=1)), net(image))


def test_default_network_has_a_few_million_parameters():
    net = SurfaceNormals().build(UNetConfig())
    assert 1_000_000 < sum(p.numel() for p in net.parameters()) < 10_000_000


def test_untrained_network_starts_facing_the_camera():
    net = SurfaceNormals().build(UNetConfig(base_channels=4, depth=2)).eval()
    out = net(torch.randn(1, 3, 16, 16))
    assert out[:, 2].min() > 0.99


@pytest.mark.parametrize("shape", [(17, 33, 3), (5, 7, 3), (64, 64, 3)])
def test_odd_sized_images_are_padded_and_cropped_back(shape):
    family = SurfaceNormals()
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    x = family.to_input(image, {"pad_multiple": 16})
    assert x.shape[1] % 16 == 0 and x.shape[2] % 16 == 0
    pred = family.from_output(torch.nn.functional.normalize(torch.randn(3, *x.shape[1:]), dim=0), shape)
    assert pred.shape == shape and pred.dtype == np.float32


def _normals_at_angles(angles_deg):
    a = np.deg2rad(np.asarray(angles_deg, np.float64))
    pred = torch.tensor(np.stack([np.sin(a), np.zeros_like(a), np.cos(a)]), dtype=torch.float32)
    return pred.view(1, 3, 1, -1)


def test_metrics_match_hand_computed_values():
    angles = [0.0, 10.0, 20.0, 40.0, 50.0]
    target = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 5)
    m = AngularMetrics()
    m.update(_normals_at_angles(angles), {"normals": target, "valid": torch.ones(1, 1, 1, 5, dtype=torch.bool)})
    r = m.compute()
    assert r["mean_angular_error"] == pytest.approx(24.0, abs=1e-3)
    assert r["median_angular_error"] == pytest.approx(20.0, abs=0.05)  # histogram resolution
    assert r["within_11.25deg"] == 0.4 and r["within_22.5deg"] == 0.6 and r["within_30deg"] == 0.6


def test_invalid_pixels_do_not_count():
    target = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 2)
    valid = torch.tensor([True, False]).view(1, 1, 1, 2)
    m = AngularMetrics()
    m.update(_normals_at_angles([5.0, 90.0]), {"normals": target, "valid": valid})
    assert m.compute()["mean_angular_error"] == pytest.approx(5.0, abs=1e-3)
    loss = cosine_loss(_normals_at_angles([60.0, 90.0]), target, valid)
    assert float(loss) == pytest.approx(0.5, abs=1e-5)  # 1 - cos 60deg, the 90deg pixel ignored


def test_metric_state_sums_like_a_distributed_reduce():
    target = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 2)
    ok = {"normals": target, "valid": torch.ones(1, 1, 1, 2, dtype=torch.bool)}
    a, b, both = AngularMetrics(), AngularMetrics(), AngularMetrics()
    a.update(_normals_at_angles([10.0, 20.0]), ok)
    b.update(_normals_at_angles([30.0, 50.0]), ok)
    both.load_state(a.state() + b.state())
    assert both.compute()["mean_angular_error"] == pytest.approx(27.5, abs=1e-3)


def test_model_dir_round_trip_with_weights_only(tmp_path):
    family, cfg = SurfaceNormals(), UNetConfig(base_channels=4, depth=2)
    torch.manual_seed(1)
    net = family.build(cfg).eval()
    save_model_dir(tmp_path, family, cfg, net, family.preprocessing(cfg, 32), {"epochs": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt"]
    torch.load(tmp_path / "model.pt", weights_only=True)  # no pickled code
    loaded = load_model_dir(tmp_path)
    x = torch.randn(1, 3, 16, 16)
    assert loaded.config == cfg and loaded.preprocessing["pad_multiple"] == 4
    assert torch.equal(loaded.network.eval()(x), net(x))


def test_model_dir_errors_say_what_is_missing(tmp_path):
    with pytest.raises(ArtifactError, match=r"lacks \['model.json', 'model.pt'\]"):
        load_model_dir(tmp_path)


def test_model_dir_from_another_format_version_is_refused(tmp_path):
    family, cfg = SurfaceNormals(), UNetConfig(base_channels=4, depth=2)
    save_model_dir(tmp_path, family, cfg, family.build(cfg), family.preprocessing(cfg, 32))
    meta = tmp_path / "model.json"
    meta.write_text(meta.read_text().replace('"format_version": 1', '"format_version": 99'))
    with pytest.raises(ArtifactError, match="format_version 99"):
        load_model_dir(tmp_path)


def test_junk_weights_file_is_an_artifact_error(tmp_path):
    family, cfg = SurfaceNormals(), UNetConfig(base_channels=4, depth=2)
    save_model_dir(tmp_path, family, cfg, family.build(cfg), family.preprocessing(cfg, 32))
    (tmp_path / "model.pt").write_bytes(b"\x00" * 64)
    with pytest.raises(ArtifactError, match="not a readable weights-only state_dict"):
        load_model_dir(tmp_path)
