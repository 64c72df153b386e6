"""A synthetic scene generator with exact normals, writing the dataset format of `data.py`.

Each scene is a room corner seen by a pinhole camera pitched down toward a textured floor: a back wall
(and in some styles a side wall), objects standing on the floor, Lambert + specular shading under a
light from above, sensor noise and a few "dropout" rectangles marked invalid in the mask. Indoor
photographs share that structure (floors below, walls facing the viewer, light from above), which is
what makes single-image normals learnable at all. Used for demos and tests only when asked for.

Two styles draw from different distributions, so a recipe chosen on one can be judged on the other:
``default`` (ellipsoids and boxes standing upright, 50-60 degree field of view, a white light from the
upper left, checker/stripe/blotch textures) and ``heldout`` (adds cylinders and tilted objects, side
walls, 35-75 degree field of view, steeper and rolled cameras, a tinted light from anywhere above plus a
fill light, value-noise and flat textures, more noise, gamma).

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
    pitch_deg: tuple[float, float]  # camera looking down by this much
    roll_deg: float
    side_wall: float  # probability
    #: Relative frequency of ellipsoid, box and cylinder.
    shapes: tuple[float, float, float]
    objects: tuple[int, int]
    tilted_objects: float  # probability that an object is not upright
    #: Relative frequency of checker, stripes, blotches, value noise, flat colour.
    textures: tuple[float, float, float, float, float]
    light_azimuth_deg: tuple[float, float]  # around the vertical; 90 = from the camera's side of the room
    light_tint: float
    fill_light: bool
    noise: tuple[float, float]
    gamma: tuple[float, float]


STYLES = {
    "default": SceneStyle(fov_deg=(50.0, 60.0), pitch_deg=(15.0, 40.0), roll_deg=4.0, side_wall=0.0,
                          shapes=(1, 1, 0), objects=(3, 7), tilted_objects=0.0, textures=(1, 1, 1, 0, 0),
                          light_azimuth_deg=(110.0, 140.0), light_tint=0.0, fill_light=False,
                          noise=(0.005, 0.03), gamma=(1.0, 1.0)),
    "heldout": SceneStyle(fov_deg=(35.0, 75.0), pitch_deg=(5.0, 55.0), roll_deg=10.0, side_wall=0.5,
                          shapes=(1, 1, 1), objects=(2, 9), tilted_objects=0.3, textures=(1, 0.5, 0.5, 1.5, 1),
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


def _hit_ellipsoid(o, d, axes):
    oo, dd = o / axes, d / axes
    a, b, c = (dd * dd).sum(-1), 2 * (dd @ oo), oo @ oo - 1
    disc = b * b - 4 * a * c
    t = np.where(disc > 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), _FAR)
    return t, (o + np.minimum(t, 1e3)[..., None] * d) / axes**2


def _hit_box(o, d, half):
    dsafe = np.where(np.abs(d) < 1e-9, 1e-9, d)
    t1, t2 = (-half - o) / dsafe, (half - o) / dsafe
    tnear, tfar = np.minimum(t1, t2), np.maximum(t1, t2)
    axis = tnear.argmax(-1)
    t_in, t_out = tnear.max(-1), tfar.min(-1)
    t = np.where((t_in < t_out) & (t_in > 0), t_in, _FAR)
    sign = -np.sign(np.take_along_axis(dsafe, axis[..., None], -1))
    return t, np.eye(3)[axis] * sign


def _hit_cylinder(o, d, dims):
    """A capped cylinder along the local y axis: dims = (radius, half height, unused)."""
    radius, half = dims[0], dims[1]
    a = d[..., 0] ** 2 + d[..., 2] ** 2
    b = 2 * (o[0] * d[..., 0] + o[2] * d[..., 2])
    c = o[0] ** 2 + o[2] ** 2 - radius**2
    disc = b * b - 4 * a * c
    t_side = np.where((disc > 0) & (a > 1e-12), (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12)), _FAR)
    t_side = np.where((np.abs(o[1] + t_side * d[..., 1]) <= half) & (t_side > 0), t_side, _FAR)
    dy = np.where(np.abs(d[..., 1]) < 1e-9, 1e-9, d[..., 1])
    cap_y = -np.sign(dy) * half  # the cap facing the ray
    t_cap = (cap_y - o[1]) / dy
    p = o + np.minimum(t_cap, 1e3)[..., None] * d
    t_cap = np.where((p[..., 0] ** 2 + p[..., 2] ** 2 <= radius**2) & (t_cap > 0), t_cap, _FAR)
    local = o + np.minimum(t_side, 1e3)[..., None] * d
    side_n = np.stack([local[..., 0], np.zeros_like(t_side), local[..., 2]], -1)
    cap_n = np.zeros_like(side_n)
    cap_n[..., 1] = np.sign(cap_y)
    return np.minimum(t_side, t_cap), np.where((t_cap < t_side)[..., None], cap_n, side_n)


def _camera(rng, look: SceneStyle) -> np.ndarray:
    """Camera-to-world rotation (columns: the camera's x, y, z axes in the world; world y is up)."""
    pitch = np.deg2rad(rng.uniform(*look.pitch_deg))
    roll = np.deg2rad(rng.uniform(-look.roll_deg, look.roll_deg))
    tilt = np.array([[1, 0, 0], [0, np.cos(pitch), np.sin(pitch)], [0, -np.sin(pitch), np.cos(pitch)]])
    spin = np.array([[np.cos(roll), -np.sin(roll), 0], [np.sin(roll), np.cos(roll), 0], [0, 0, 1]])
    return tilt @ spin


def _plane(direction, normal, offset):
    """Ray parameter of the plane {p : p . normal = offset} seen from its front side, else _FAR."""
    denom = direction @ normal
    ok = denom < -1e-6
    return np.where(ok, offset / np.where(ok, denom, -1.0), _FAR)


def _floor_spot(rng, cam, half_fov, height, back):
    """A floor point in view: a random pixel of the lower frame, followed down to the floor."""
    for _ in range(20):
        u, v = rng.uniform(-0.85, 0.85), rng.uniform(-0.95, 0.2)
        d = cam @ np.array([u * half_fov, v * half_fov, -1.0])
        if d[1] < -0.05:
            spot = d * (height / -d[1])
            if -back + 0.8 < spot[2] < -1.5:
                return spot
    return np.array([0.0, -height, -min(back - 1.0, 3.0)])


def _shade(rng, style: SceneStyle, normals, albedo, direction) -> np.ndarray:
    # World coordinates, y up. Light from above with some jitter: like the "light from above" prior of
    # real photos, it makes shading a usable cue for orientation instead of pure ambiguity.
    az = np.deg2rad(rng.uniform(*style.light_azimuth_deg))
    light = np.array([np.cos(az) * 0.6, 0.8, np.sin(az) * 0.6]) + rng.normal(scale=0.15, size=3)
    light /= np.linalg.norm(light)
    tint = 1.0 + rng.uniform(-style.light_tint, style.light_tint, size=3)
    halfway = light - direction
    halfway /= np.linalg.norm(halfway, axis=-1, keepdims=True)
    diffuse = (normals @ light).clip(0, None)[..., None] * tint
    if style.fill_light:  # a weak light from the opposite side, as in lit rooms
        fill = light * [-1.0, 1.0, -1.0]
        diffuse = diffuse + 0.25 * (normals @ (fill / np.linalg.norm(fill))).clip(0, None)[..., None]
    specular = ((normals * halfway).sum(-1).clip(0, None) ** 24)[..., None] * rng.uniform(0.0, 0.4)
    colour = albedo * (rng.uniform(0.15, 0.3) + 0.8 * diffuse) + specular
    colour = colour.clip(0, 1) ** rng.uniform(*style.gamma)
    return colour + rng.normal(scale=rng.uniform(*style.noise), size=colour.shape)


def render_scene(rng: np.random.Generator, size: int,
                 style: str = "default") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, HxWx3 float32 unit camera-space normals, HxW bool valid) for one random scene."""
    look = STYLES[style]
    coords = (np.arange(size) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(coords, -coords)  # y up: row 0 is the top of the picture
    half_fov = np.tan(np.deg2rad(rng.uniform(*look.fov_deg) / 2))
    cam = _camera(rng, look)
    # Pinhole camera at the origin looking down its -z; everything below is in world coordinates.
    direction = np.stack([x * half_fov, y * half_fov, -np.ones_like(x)], axis=-1) @ cam.T
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    origin = np.zeros(3)
    height, back = rng.uniform(1.2, 1.6), rng.uniform(5.0, 8.0)

    depth = np.full(x.shape, _FAR)
    normals = np.zeros((*x.shape, 3))
    albedo = np.zeros((*x.shape, 3))

    def paint(t: np.ndarray, n: np.ndarray, local: np.ndarray) -> None:
        nearer = (t > 0) & (t < depth)
        depth[nearer] = t[nearer]
        normals[nearer] = np.broadcast_to(n, normals.shape)[nearer]
        albedo[nearer] = _texture(rng, local, look)[nearer]

    walls = [(np.array([0.0, 1.0, 0.0]), -height), (np.array([0.0, 0.0, 1.0]), -back)]
    if rng.random() < look.side_wall:
        side = rng.choice([-1.0, 1.0])
        walls.append((np.array([-side, 0.0, 0.0]), -rng.uniform(1.5, 3.0)))
    for normal, offset in walls:
        t = _plane(direction, normal, offset)
        paint(t, normal, direction * np.minimum(t, 1e3)[..., None])

    for _ in range(int(rng.integers(look.objects[0], look.objects[1] + 1))):
        kind = _pick(rng, look.shapes)
        dims = rng.uniform(0.25, 0.6, size=3) if kind != 1 else rng.uniform(0.2, 0.5, size=3)
        angle = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
        lift = dims[1]
        if rng.random() < look.tilted_objects:
            rot, lift = _rotation(rng), dims.max()
        centre = _floor_spot(rng, cam, half_fov, height, back) + np.array([0.0, lift, 0.0])
        o = (origin - centre) @ rot  # into the object's frame (rows are vectors: v @ R == R^T v)
        d = direction @ rot
        t, n_local = (_hit_ellipsoid, _hit_box, _hit_cylinder)[kind](o, d, dims)
        n = n_local @ rot.T
        paint(t, n / np.linalg.norm(n, axis=-1, keepdims=True).clip(1e-9), o + np.minimum(t, 1e3)[..., None] * d)

    image = (_shade(rng, look, normals, albedo, direction).clip(0, 1) * 255).round().astype(np.uint8)
    valid = np.ones(x.shape, dtype=bool)
    for _ in range(int(rng.integers(0, 3))):
        r0, c0 = rng.integers(0, size, 2)
        valid[r0 : r0 + size // 8, c0 : c0 + size // 8] = False
    return image, (normals @ cam).astype(np.float32), valid  # world to camera: n_cam = cam^T n_world


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
