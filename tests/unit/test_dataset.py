import numpy as np
import pytest
import torch

from model.family import DataFormatError
from model.normals.data import NormalsDataset, index_channel
from model.normals.encoding import decode_normals_png, encode_png, normals_to_png16, normals_to_rgb


def write_sample(root, stem, h=20, w=30, normal=(0.0, 0.0, 1.0), mask=None, image_ext=".png"):
    for sub in ("images", "normals"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rgb = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    (root / "images" / f"{stem}{image_ext}").write_bytes(encode_png(rgb))
    n = np.broadcast_to(np.asarray(normal, np.float32), (h, w, 3)).copy()
    (root / "normals" / f"{stem}.png").write_bytes(encode_png(normals_to_rgb(n)))
    if mask is not None:
        (root / "masks").mkdir(exist_ok=True)
        (root / "masks" / f"{stem}.png").write_bytes(encode_png(mask.astype(np.uint8) * 255))


def test_index_pairs_images_and_normals_by_stem(tmp_path):
    write_sample(tmp_path, "b")
    write_sample(tmp_path, "a")
    assert [s.stem for s in index_channel(tmp_path)] == ["a", "b"]


def test_missing_normals_folder_is_named(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataFormatError, match="missing folder normals/"):
        index_channel(tmp_path)


def test_unmatched_stems_are_listed(tmp_path):
    write_sample(tmp_path, "a")
    (tmp_path / "images" / "lonely.png").write_bytes((tmp_path / "images" / "a.png").read_bytes())
    with pytest.raises(DataFormatError, match=r"1 images without a normal map.*lonely"):
        index_channel(tmp_path)


def test_corrupt_image_names_the_file(tmp_path):
    write_sample(tmp_path, "a")
    (tmp_path / "images" / "a.png").write_bytes(b"not a png")
    ds = NormalsDataset(index_channel(tmp_path), image_size=16, augment=False, seed=0)
    with pytest.raises(DataFormatError, match=r"images/a\.png"):
        ds[0]


def test_size_mismatch_between_image_and_normals_is_reported(tmp_path):
    write_sample(tmp_path, "a")
    (tmp_path / "normals" / "a.png").write_bytes(encode_png(np.zeros((5, 5, 3), np.uint8)))
    ds = NormalsDataset(index_channel(tmp_path), image_size=16, augment=False, seed=0)
    with pytest.raises(DataFormatError, match="differs from its image"):
        ds[0]


def test_mask_and_all_zero_pixels_are_excluded(tmp_path):
    mask = np.ones((20, 30), bool)
    mask[:, :10] = False
    write_sample(tmp_path, "a", mask=mask)
    normals = (tmp_path / "normals" / "a.png")
    rgb = normals_to_rgb(np.broadcast_to(np.float32([0, 0, 1]), (20, 30, 3)).copy())
    rgb[0, :] = 0  # no ground truth in the first row
    normals.write_bytes(encode_png(rgb))
    item = NormalsDataset(index_channel(tmp_path), image_size=20, augment=False, seed=0)[0]
    valid = item["valid"][0]
    assert valid.shape == (20, 20)  # centre crop of 30 -> columns 5..24
    assert not valid[0].any()
    assert not valid[1:, :5].any() and valid[1:, 5:].all()


def test_sixteen_bit_normal_maps_keep_their_precision():
    n = np.zeros((4, 4, 3), np.float32)
    n[..., 0], n[..., 2] = np.sin(0.3001), np.cos(0.3001)
    decoded, valid = decode_normals_png(normals_to_png16(n))
    assert valid.all()
    assert np.abs(decoded - n).max() < 1e-4  # 8 bits would be ~4e-3


def test_jpeg_images_are_accepted(tmp_path):
    write_sample(tmp_path, "a", image_ext=".jpg")
    item = NormalsDataset(index_channel(tmp_path), image_size=16, augment=False, seed=0)[0]
    assert item["input"].shape == (3, 16, 16)


def test_resize_keeps_shorter_side_and_crops_square(tmp_path):
    write_sample(tmp_path, "a", h=40, w=80)
    item = NormalsDataset(index_channel(tmp_path), image_size=16, augment=False, seed=0)[0]
    assert item["input"].shape == (3, 16, 16) and item["normals"].shape == (3, 16, 16)


def test_mirroring_negates_the_x_component(tmp_path):
    write_sample(tmp_path, "a", h=16, w=16, normal=(0.6, 0.0, 0.8))
    ds = NormalsDataset(index_channel(tmp_path), image_size=16, augment=True, seed=0)
    xs = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        xs.add(round(float(ds[0]["normals"][0].mean()), 1))
    assert xs == {0.6, -0.6}


def test_augmentation_is_a_pure_function_of_seed_epoch_and_index(tmp_path):
    write_sample(tmp_path, "a", h=40, w=60)
    a = NormalsDataset(index_channel(tmp_path), image_size=16, augment=True, seed=3)
    b = NormalsDataset(index_channel(tmp_path), image_size=16, augment=True, seed=3)
    a.set_epoch(2)
    b.set_epoch(2)
    assert torch.equal(a[0]["input"], b[0]["input"])


def test_set_crop_cuts_training_windows_and_leaves_evaluation_whole(tmp_path):
    write_sample(tmp_path, "a", h=32, w=32)
    train = NormalsDataset(index_channel(tmp_path), image_size=32, augment=True, seed=0)
    train.set_crop(16)
    assert train[0]["input"].shape == (5, 16, 16) and train[0]["normals"].shape == (3, 16, 16)
    evaluation = NormalsDataset(index_channel(tmp_path), image_size=32, augment=False, seed=0)
    evaluation.set_crop(16)
    assert evaluation[0]["input"].shape == (3, 32, 32)
    whole = NormalsDataset(index_channel(tmp_path), image_size=32, augment=True, seed=0)
    whole.set_crop(32)
    assert whole[0]["input"].shape == (3, 32, 32)
