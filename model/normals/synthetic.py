"""A synthetic scene generator with exact normals, writing the dataset format of `data.py`.

Each scene is a tilted textured ground plane with ellipsoids and boxes in front of it, seen by a
pinhole camera, Lambert + specular shaded under a random light, with sensor noise and a few
"dropout" rectangles marked invalid in the mask. Used for demos and tests only when asked for.

    python -m model.normals.synthetic OUT_DIR --count 64 --size 128 --seed 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from model.normals.encoding import encode_png, normals_to_rgb

_FAR = 1e9


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _texture(rng: np.random.Generator, local: np.ndarray) -> np.ndarray:
    """Per-pixel albedo from a random pattern in the surface's own coordinates."""
    base = rng.uniform(0.55, 0.95, size=3)
    other = base * rng.uniform(0.5, 0.8)
    k = rng.uniform(4.0, 8.0)
    kind = rng.integers(3)
    if kind == 0:  # checker
        t = (np.floor(k * local[..., 0]) + np.floor(k * local[..., 1]) + np.floor(k * local[..., 2])) % 2
    elif kind == 1:  # stripes
        t = 0.5 + 0.5 * np.sin(k * 3.0 * local[..., int(rng.integers(3))])
    else:  # smooth blotches
        t = 0.5 + 0.25 * (np.sin(k * local[..., 0]) + np.cos(k * 1.3 * local[..., 1]))
    return base * (1 - t[..., None]) + other * t[..., None]


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, HxWx3 float32 unit normals, HxW bool valid) for one random scene."""
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, -coords)  # y up: row 0 is the top of the picture
    # Pinhole camera at the origin looking down -z with a ~50 degree field of view: perspective makes
    # texture density and outlines cues for orientation, as in real photos.
    half_fov = np.tan(np.deg2rad(25.0))
    direction = np.stack([x * half_fov, y * half_fov, -np.ones_like(x)], axis=-1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    origin = np.zeros(3)

    depth = np.full(x.shape, _FAR)
    normals = np.zeros((*x.shape, 3))
    albedo = np.zeros((*x.shape, 3))

    def paint(t: np.ndarray, n: np.ndarray, local: np.ndarray) -> None:
        nearer = (t > 0) & (t < depth)
        depth[nearer] = t[nearer]
        normals[nearer] = n[nearer]
        albedo[nearer] = _texture(rng, local)[nearer]

    # Ground plane behind everything, facing the camera within ~50 degrees.
    n_plane = rng.normal(size=3) * [0.6, 0.6, 0.0] + [0.0, 0.0, 1.0]
    n_plane /= np.linalg.norm(n_plane)
    anchor = np.array([0.0, 0.0, -rng.uniform(4.0, 6.0)])
    denom = direction @ n_plane
    t_plane = np.where(denom < -1e-6, (anchor @ n_plane) / np.where(denom < -1e-6, denom, -1.0), _FAR)
    paint(t_plane, np.broadcast_to(n_plane, normals.shape), direction * t_plane[..., None])

    for _ in range(int(rng.integers(4, 9))):
        rot = _rotation(rng)
        z = rng.uniform(2.0, 3.4)
        centre = np.array([*(rng.uniform(-0.8, 0.8, 2) * z * half_fov), -z])
        o = (origin - centre) @ rot  # into the object's frame (rows are vectors: v @ R == R^T v)
        d = direction @ rot
        if rng.random() < 0.5:  # ellipsoid
            axes = rng.uniform(0.25, 0.7, size=3)
            oo, dd = o / axes, d / axes
            a, b, c = (dd * dd).sum(-1), 2 * (dd @ oo), oo @ oo - 1
            disc = b * b - 4 * a * c
            t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), _FAR)
            local = o + t[..., None] * d
            n = (local / axes**2) @ rot.T
        else:  # box, slab test
            half = rng.uniform(0.2, 0.55, size=3)
            dsafe = np.where(np.abs(d) < 1e-9, 1e-9, d)
            t1, t2 = (-half - o) / dsafe, (half - o) / dsafe
            tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
            axis = tnear.argmax(-1)
            t_in, t_out = tnear.max(-1), tfar.min(-1)
            t = np.where((t_in < t_out) & (t_in > 0), t_in, _FAR)
            sign = -np.sign(np.take_along_axis(dsafe, axis[..., None], -1))
            local = o + t[..., None] * d
            n = (np.eye(3)[axis] * sign) @ rot.T
        n = n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-9)
        paint(t, n, local)

    # Light from the upper left-front with some jitter: like the "light from above" prior of real
    # photos, it makes shading a usable cue for orientation instead of pure ambiguity.
    light = np.array([-0.35, 0.55, 0.75]) + rng.normal(scale=0.15, size=3)
    light /= np.linalg.norm(light)
    view = -direction
    halfway = light + view
    halfway /= np.linalg.norm(halfway, axis=-1, keepdims=True)
    diffuse = (normals @ light).clip(0, None)[..., None]
    specular = ((normals * halfway).sum(-1).clip(0, None) ** 24)[..., None] * rng.uniform(0.0, 0.4)
    colour = albedo * (rng.uniform(0.15, 0.3) + 0.8 * diffuse) + specular
    colour += rng.normal(scale=rng.uniform(0.005, 0.03), size=colour.shape)
    image = (colour.clip(0, 1) * 255).round().astype(np.uint8)

    valid = np.ones(x.shape, dtype=bool)
    for _ in range(int(rng.integers(0, 3))):
        r0, c0 = rng.integers(0, size, 2)
        valid[r0 : r0 + size // 8, c0 : c0 + size // 8] = False
    return image, normals.astype(np.float32), valid


def write_dataset(out: Path, count: int, size: int = 128, seed: int = 0) -> None:
    """Write ``count`` scenes into ``out/{images,normals,masks}`` in the documented format."""
    if count < 1 or size < 8:
        raise ValueError("count must be >= 1 and size >= 8")
    for sub in ("images", "normals", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        image, normals, valid = render_scene(rng, size)
        stem = f"scene_{i:05d}"
        (out / "images" / f"{stem}.png").write_bytes(encode_png(image))
        (out / "normals" / f"{stem}.png").write_bytes(encode_png(normals_to_rgb(normals)))
        (out / "masks" / f"{stem}.png").write_bytes(encode_png((valid * 255).astype(np.uint8)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="channel directory to write (images/, normals/, masks/)")
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_dataset(args.out, args.count, args.size, args.seed)
    print(f"wrote {args.count} scenes of {args.size}x{args.size} to {args.out}")


if __name__ == "__main__":
    main()
