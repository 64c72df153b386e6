"""A synthetic scene generator with exact normals, writing the dataset format of `data.py`.

Each scene is a tilted textured ground plane with objects in front of it, seen by a pinhole camera,
Lambert + specular shaded, with sensor noise and a few "dropout" rectangles marked invalid in the mask.
Used for demos and tests only when asked for.

Two styles draw from different distributions, so a recipe chosen on one can be judged on the other:
``default`` (ellipsoids and boxes, ~50 degree field of view, one white light from the upper left,
procedural textures) and ``heldout`` (adds cylinders, 35-70 degree field of view, a tinted key light
from anywhere in the upper half plus a fill light, value-noise and flat textures, more noise, gamma).

    python -m model.normals.synthetic OUT_DIR --count 64 --size 128 --seed 0 [--style heldout]
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model.normals.encoding import encode_png, normals_to_rgb

_FAR = 1e9


@dataclass(frozen=True)
class SceneStyle:
    fov_deg: tuple[float, float]
    #: Relative frequency of ellipsoid, box and cylinder.
    shapes: tuple[float, float, float]
    objects: tuple[int, int]
    #: Relative frequency of checker, stripes, blotches, value noise, flat colour.
    textures: tuple[float, float, float, float, float]
    light_azimuth_deg: tuple[float, float]  # 0 = from the right, 90 = from above
    light_tint: float
    fill_light: bool
    noise: tuple[float, float]
    gamma: tuple[float, float]


STYLES = {
    "default": SceneStyle(fov_deg=(50.0, 50.0), shapes=(1, 1, 0), objects=(4, 8), textures=(1, 1, 1, 0, 0),
                          light_azimuth_deg=(122.0, 122.0), light_tint=0.0, fill_light=False,
                          noise=(0.005, 0.03), gamma=(1.0, 1.0)),
    "heldout": SceneStyle(fov_deg=(35.0, 70.0), shapes=(1, 1, 1), objects=(2, 10), textures=(1, 0.5, 0.5, 1.5, 1),
                          light_azimuth_deg=(20.0, 160.0), light_tint=0.25, fill_light=True,
                          noise=(0.01, 0.05), gamma=(0.8, 1.25)),
}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _pick(rng: np.random.Generator, weights) -> int:
    p = np.asarray(weights, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _texture(rng: np.random.Generator, local: np.ndarray, style: SceneStyle) -> np.ndarray:
    """Per-pixel albedo from a random pattern in the surface's own coordinates."""
    base = rng.uniform(0.55, 0.95, size=3)
    other = base * rng.uniform(0.5, 0.8)
    k = rng.uniform(4.0, 8.0)
    kind = _pick(rng, style.textures)
    if kind == 0:  # checker
        t = (np.floor(k * local[..., 0]) + np.floor(k * local[..., 1]) + np.floor(k * local[..., 2])) % 2
    elif kind == 1:  # stripes
        t = 0.5 + 0.5 * np.sin(k * 3.0 * local[..., int(rng.integers(3))])
    elif kind == 2:  # smooth blotches
        t = 0.5 + 0.25 * (np.sin(k * local[..., 0]) + np.cos(k * 1.3 * local[..., 1]))
    elif kind == 3:  # sum of random plane waves: irregular, isotropic-looking noise
        t = np.zeros(local.shape[:-1])
        for _ in range(6):
            t += np.sin(local @ (rng.normal(size=3) * k * 1.5) + rng.uniform(0, 2 * np.pi))
        t = 0.5 + t / 6.0
    else:  # flat colour: shading is the only cue
        t = np.zeros(local.shape[:-1])
    return base * (1 - t[..., None]) + other * t[..., None]


def _hit_ellipsoid(rng, o, d):
    axes = rng.uniform(0.25, 0.7, size=3)
    oo, dd = o / axes, d / axes
    a, b, c = (dd * dd).sum(-1), 2 * (dd @ oo), oo @ oo - 1
    disc = b * b - 4 * a * c
    t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), _FAR)
    return t, (o + t[..., None] * d) / axes**2


def _hit_box(rng, o, d):
    half = rng.uniform(0.2, 0.55, size=3)
    dsafe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    t1, t2 = (-half - o) / dsafe, (half - o) / dsafe
    tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = tnear.argmax(-1)
    t_in, t_out = tnear.max(-1), tfar.min(-1)
    t = np.where((t_in < t_out) & (t_in > 0), t_in, _FAR)
    sign = -np.sign(np.take_along_axis(dsafe, axis[..., None], -1))
    return t, np.eye(3)[axis] * sign


def _hit_cylinder(rng, o, d):
    """A capped cylinder along the local z axis."""
    radius, half = rng.uniform(0.2, 0.5), rng.uniform(0.25, 0.7)
    a = d[..., 0] ** 2 + d[..., 1] ** 2
    b = 2 * (o[0] * d[..., 0] + o[1] * d[..., 1])
    c = o[0] ** 2 + o[1] ** 2 - radius**2
    disc = b * b - 4 * a * c
    t_side = np.where((disc > 0) & (a > 1e-12), (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12)), _FAR)
    z_side = o[2] + t_side * d[..., 2]
    t_side = np.where((np.abs(z_side) <= half) & (t_side > 0), t_side, _FAR)
    dz = np.where(np.abs(d[..., 2]) < 1e-9, 1e-9, d[..., 2])
    cap_z = -np.sign(dz) * half  # the cap facing the ray
    t_cap = (cap_z - o[2]) / dz
    p = o + t_cap[..., None] * d
    t_cap = np.where((p[..., 0] ** 2 + p[..., 1] ** 2 <= radius**2) & (t_cap > 0), t_cap, _FAR)
    local = o + t_side[..., None] * d
    side_n = np.stack([local[..., 0], local[..., 1], np.zeros_like(t_side)], -1)
    cap_n = np.zeros_like(side_n)
    cap_n[..., 2] = np.sign(cap_z)
    use_cap = t_cap < t_side
    return np.minimum(t_side, t_cap), np.where(use_cap[..., None], cap_n, side_n)


def _shade(rng, style: SceneStyle, normals, albedo, direction) -> np.ndarray:
    # Light from the upper half with some jitter: like the "light from above" prior of real photos,
    # it makes shading a usable cue for orientation instead of pure ambiguity.
    az = np.deg2rad(rng.uniform(*style.light_azimuth_deg))
    light = np.array([np.cos(az) * 0.65, np.sin(az) * 0.65, 0.75]) + rng.normal(scale=0.15, size=3)
    light /= np.linalg.norm(light)
    tint = 1.0 + rng.uniform(-style.light_tint, style.light_tint, size=3)
    halfway = light - direction
    halfway /= np.linalg.norm(halfway, axis=-1, keepdims=True)
    diffuse = (normals @ light).clip(0, None)[..., None] * tint
    if style.fill_light:  # a weak light from the opposite side, as in lit rooms
        fill = -light * [1.0, 1.0, -1.0]
        diffuse = diffuse + 0.25 * (normals @ (fill / np.linalg.norm(fill))).clip(0, None)[..., None]
    specular = ((normals * halfway).sum(-1).clip(0, None) ** 24)[..., None] * rng.uniform(0.0, 0.4)
    colour = albedo * (rng.uniform(0.15, 0.3) + 0.8 * diffuse) + specular
    colour = colour.clip(0, 1) ** rng.uniform(*style.gamma)
    return colour + rng.normal(scale=rng.uniform(*style.noise), size=colour.shape)


def render_scene(rng: np.random.Generator, size: int,
                 style: str = "default") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, HxWx3 float32 unit normals, HxW bool valid) for one random scene."""
    look = STYLES[style]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, -coords)  # y up: row 0 is the top of the picture
    # Pinhole camera at the origin looking down -z: perspective makes texture density and outlines
    # cues for orientation, as in real photos.
    half_fov = np.tan(np.deg2rad(rng.uniform(*look.fov_deg) / 2))
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
        albedo[nearer] = _texture(rng, local, look)[nearer]

    # Ground plane behind everything, facing the camera within ~50 degrees.
    n_plane = rng.normal(size=3) * [0.6, 0.6, 0.0] + [0.0, 0.0, 1.0]
    n_plane /= np.linalg.norm(n_plane)
    anchor = np.array([0.0, 0.0, -rng.uniform(4.0, 6.0)])
    denom = direction @ n_plane
    t_plane = np.where(denom < -1e-6, (anchor @ n_plane) / np.where(denom < -1e-6, denom, -1.0), _FAR)
    paint(t_plane, np.broadcast_to(n_plane, normals.shape), direction * t_plane[..., None])

    for _ in range(int(rng.integers(look.objects[0], look.objects[1] + 1))):
        rot = _rotation(rng)
        z = rng.uniform(2.0, 3.4)
        centre = np.array([*(rng.uniform(-0.8, 0.8, 2) * z * half_fov), -z])
        o = (origin - centre) @ rot  # into the object's frame (rows are vectors: v @ R == R^T v)
        d = direction @ rot
        t, n_local = (_hit_ellipsoid, _hit_box, _hit_cylinder)[_pick(rng, look.shapes)](rng, o, d)
        n = n_local @ rot.T
        n = n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-9)
        paint(t, n, o + np.minimum(t, 1e3)[..., None] * d)

    image = (_shade(rng, look, normals, albedo, direction).clip(0, 1) * 255).round().astype(np.uint8)
    valid = np.ones(x.shape, dtype=bool)
    for _ in range(int(rng.integers(0, 3))):
        r0, c0 = rng.integers(0, size, 2)
        valid[r0 : r0 + size // 8, c0 : c0 + size // 8] = False
    return image, normals.astype(np.float32), valid


def write_dataset(out: Path, count: int, size: int = 128, seed: int = 0, style: str = "default") -> None:
    """Write ``count`` scenes into ``out/{images,normals,masks}`` in the documented format."""
    if count < 1 or size < 8:
        raise ValueError("count must be >= 1 and size >= 8")
    if style not in STYLES:
        raise ValueError(f"style {style!r} is not one of {sorted(STYLES)}")
    for sub in ("images", "normals", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        image, normals, valid = render_scene(rng, size, style)
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
    parser.add_argument("--style", choices=sorted(STYLES), default="default",
                        help="scene distribution (heldout: for judging a recipe chosen on default)")
    args = parser.parse_args(argv)
    write_dataset(args.out, args.count, args.size, args.seed, args.style)
    print(f"wrote {args.count} {args.style} scenes of {args.size}x{args.size} to {args.out}")


if __name__ == "__main__":
    main()
