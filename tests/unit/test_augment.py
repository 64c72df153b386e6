"""Every geometric augmentation must move the normals with the pixels: checked against a rendered truth.

A sphere seen by a pinhole camera is rendered analytically. Mirroring the picture must give the picture
of the mirrored scene (sphere at -x); a random crop must keep every pixel's normal (the same camera with a
shifted principal point).
"""

from __future__ import annotations

import numpy as np
import torch

from model.normals import augment as aug
from model.normals.data import finish_item
from model.normals.network import frame_coordinates


def render_sphere_normals(size: int, centre, radius: float, half_fov_tan: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(3xSxS camera-space normals, 1xSxS valid) of a sphere; pixel centres, y up, camera looking down -z."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords * half_fov_tan, -coords * half_fov_tan)
    d = np.stack([x, y, -np.ones_like(x)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    c = np.asarray(centre, float)
    b = d @ c
    disc = b * b - (c @ c - radius**2)
    hit = disc > 0
    t = b - np.sqrt(np.where(hit, disc, 0))
    n = t[..., None] * d - c
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    n[~hit] = 0
    return torch.from_numpy(n.transpose(2, 0, 1)).float(), torch.from_numpy(hit[None]).float()


def _fraction_close(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor, tol_deg: float) -> float:
    cos = (a * b).sum(0).clamp(-1, 1)
    err = torch.rad2deg(torch.acos(cos))[valid[0].bool()]
    return float((err < tol_deg).float().mean())


def test_mirroring_gives_the_normals_of_the_mirrored_scene():
    nrm, val = render_sphere_normals(64, (0.4, 0.2, -3.0), 0.8, np.tan(np.deg2rad(25)))
    expected, expected_val = render_sphere_normals(64, (-0.4, 0.2, -3.0), 0.8, np.tan(np.deg2rad(25)))
    img = torch.rand(3, 64, 64)
    flipped_img, flipped, flipped_val = aug.mirror(img, nrm, val)
    assert torch.equal(flipped_img, img.flip(-1))
    assert torch.equal(flipped_val, expected_val)
    assert torch.allclose(flipped, expected, atol=1e-5)


def test_a_training_crop_keeps_each_pixels_normal_or_mirrors_it():
    nrm, val = render_sphere_normals(64, (0.3, -0.2, -3.0), 1.0, np.tan(np.deg2rad(30)))
    img = torch.rand(3, 64, 64)
    for epoch in range(8):
        item = finish_item(img, nrm, val, 48, True, seed=3, epoch=epoch, index=0)
        out = item["normals"]
        found = [(top, left, m) for top in range(17) for left in range(17) for m in (False, True)
                 if torch.allclose(out, _window(nrm, top, left, 48, m), atol=1e-6)]
        assert found, f"epoch {epoch}: the crop's normals are no window of the truth, mirrored or not"


def _window(nrm: torch.Tensor, top: int, left: int, size: int, mirrored: bool) -> torch.Tensor:
    w = nrm[:, top : top + size, left : left + size]
    return w.flip(-1) * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1) if mirrored else w


def test_augmented_items_only_mirror_or_keep_the_normals():
    nrm = torch.tensor([0.6, 0.0, 0.8]).view(3, 1, 1).expand(3, 40, 60).clone()
    img, val = torch.rand(3, 40, 60), torch.ones(1, 40, 60)
    seen = set()
    for epoch in range(12):
        item = finish_item(img, nrm, val, 32, True, seed=1, epoch=epoch, index=0)
        assert item["input"].shape == (3, 32, 32)
        xs = item["normals"][0].unique().tolist()
        assert len(xs) == 1 and round(abs(xs[0]), 4) == 0.6
        assert torch.equal(item["normals"][1:], nrm[1:, :32, :32])
        seen.add(round(xs[0], 1))
    assert seen == {0.6, -0.6}


def test_photometric_jitter_stays_an_image():
    img = torch.rand(3, 16, 16)
    out = aug.photometric(img, np.random.default_rng(0))
    assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1 and not torch.equal(out, img)


def test_a_framed_window_keeps_each_pixels_normal_and_says_where_it_sits_in_the_frame():
    nrm, val = render_sphere_normals(64, (0.3, -0.2, -3.0), 1.0, np.tan(np.deg2rad(30)))
    img = torch.rand(3, 64, 64)
    frame = frame_coordinates(torch.zeros(1, 3, 64, 64))[0]
    places = set()
    for epoch in range(6):
        whole = finish_item(img, nrm, val, 64, True, seed=3, epoch=epoch, index=0)
        item = aug.framed_window(whole, 32, seed=3, epoch=epoch, index=0)
        assert item["input"].shape == (5, 32, 32) and item["normals"].shape == (3, 32, 32)
        # The coordinates name the window's place in the (possibly mirrored) whole frame: read it back.
        left = round(float(item["input"][3, 0, 0]) * 32 + 32 - 0.5)
        top = round(32 - 0.5 - float(item["input"][4, 0, 0]) * 32)
        window = (..., slice(top, top + 32), slice(left, left + 32))
        assert torch.equal(item["input"][3:], frame[window])
        assert torch.equal(item["input"][:3], whole["input"][window])
        assert torch.equal(item["normals"], whole["normals"][window])
        assert torch.equal(item["valid"], whole["valid"][window])
        places.add((top, left))
    assert len(places) > 1, "every epoch cut the same window"
