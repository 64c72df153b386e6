"""The on-disk dataset format and the training/evaluation views of it.

A channel directory holds ``images/<stem>.png|jpg|jpeg``, ``normals/<stem>.png`` and optionally
``masks/<stem>.png``. Every image needs a normal map of the same size and vice versa.

Resize/crop rule: each sample is scaled so its shorter side equals ``image_size`` (image: bilinear
with antialiasing; normals and mask: nearest, so no invalid pixel bleeds into a valid one), then cut
to ``image_size`` x ``image_size``: the centre for evaluation, a random window for training. Training
also mirrors half the samples left-right (negating the normals' x component) and jitters brightness,
contrast, colour and gamma (see ``augment.py`` for why the normals stay consistent), then, with a crop
size set (``set_crop``), cuts a random smaller window that carries its frame coordinates along. Each
sample is decoded once per job and kept in memory while that fits (``memory.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from model.family import DataFormatError
from model.normals import augment as aug
from model.normals.encoding import read_mask, read_normals, read_rgb
from model.normals.memory import DecodedStore
from model.normals.spec import RECORD_FORMAT

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
INPUT_MEAN = 0.5
INPUT_STD = 0.5


@dataclass(frozen=True)
class Sample:
    stem: str
    image: Path
    normals: Path
    mask: Path | None


def _by_stem(folder: Path, suffixes: Sequence[str]) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        if path.stem in found:
            raise DataFormatError(
                f"{folder}: two files share the stem {path.stem!r}: {found[path.stem].name}, {path.name}"
            )
        found[path.stem] = path
    return found


def index_channel(root: Path) -> list[Sample]:
    images_dir, normals_dir, masks_dir = root / "images", root / "normals", root / "masks"
    for required in (images_dir, normals_dir):
        if not required.is_dir():
            present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
            raise DataFormatError(
                f"{root}: missing folder {required.name}/ (found {present}); a channel holds "
                "images/<stem>.png|jpg, normals/<stem>.png and optionally masks/<stem>.png"
            )
    images = _by_stem(images_dir, IMAGE_SUFFIXES)
    normals = _by_stem(normals_dir, (".png",))
    masks = _by_stem(masks_dir, (".png",)) if masks_dir.is_dir() else {}
    for kind, extra in (
        ("images without a normal map", sorted(set(images) - set(normals))),
        ("normal maps without an image", sorted(set(normals) - set(images))),
        ("masks without an image", sorted(set(masks) - set(images))),
    ):
        if extra:
            shown = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise DataFormatError(f"{root}: {len(extra)} {kind} (stems: {shown}); every stem needs both")
    if not images:
        raise DataFormatError(f"{root}: no images found in images/ (accepted: {', '.join(IMAGE_SUFFIXES)})")
    return [Sample(s, images[s], normals[s], masks.get(s)) for s in sorted(images)]


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HxWx3 uint8 image, HxWx3 float32 normals, HxW bool valid) at the file's own size."""
    image = read_rgb(sample.image)
    normals, valid = read_normals(sample.normals)
    if normals.shape[:2] != image.shape[:2]:
        raise DataFormatError(
            f"{sample.normals}: size {normals.shape[1]}x{normals.shape[0]} differs from its image "
            f"{sample.image.name} ({image.shape[1]}x{image.shape[0]})"
        )
    if sample.mask is not None:
        mask = read_mask(sample.mask)
        if mask.shape != valid.shape:
            raise DataFormatError(f"{sample.mask}: mask size differs from its image {sample.image.name}")
        valid &= mask
    return image, normals, valid


def normalize_input(image: torch.Tensor) -> torch.Tensor:
    """CxHxW float image in [0, 1] to the network's input scale."""
    return (image - INPUT_MEAN) / INPUT_STD


class NormalsDataset(Dataset):
    """Items: ``input`` (3xSxS float), ``normals`` (3xSxS float), ``valid`` (1xSxS bool)."""

    def __init__(self, samples: Sequence[Sample], image_size: int, augment: bool, seed: int) -> None:
        self.samples = list(samples)
        self.image_size = image_size
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.crop: int | None = None
        self.memory = DecodedStore()

    @property
    def in_memory(self) -> bool:
        """Whether every sample is already decoded (loader processes then only add overhead)."""
        return len(self.memory) == len(self.samples)

    def preload(self) -> bool:
        """Decode every sample into memory now, in this process, if the first one says they all fit."""
        if self.in_memory or not self.samples:
            return self.in_memory
        self._decoded(0)
        # Not kept (one sample is over the budget), or all of them would not fit: decode per access instead.
        if len(self.memory) == 0 or self.memory.used * len(self.samples) > self.memory.budget:
            return False
        for index in range(len(self.samples)):
            self._decoded(index)
        return self.in_memory

    def _decoded(self, index: int):
        entry = self.memory.get(index)
        if entry is None:
            entry = DecodedStore.pack(*resized_tensors(*load_sample(self.samples[index]), self.image_size))
            self.memory.put(index, entry)
        return entry

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def set_crop(self, size: int) -> None:
        """Training items become random ``size`` x ``size`` windows (only while augmenting; < image_size)."""
        self.crop = size if self.augment and size < self.image_size else None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        img, nrm, val = DecodedStore.unpack(self._decoded(index))
        item = finish_item(img, nrm, val, self.image_size, self.augment, self.seed, self.epoch, index)
        return item if self.crop is None else aug.framed_window(item, self.crop, self.seed, self.epoch, index)


#: Pipe-mode records: tar members ``<key>.png|jpg|jpeg`` (image), ``<key>.normals.png``, optional
#: ``<key>.mask.png``, consecutive per key. Same pixel encodings as the File-mode folders.


def sample_from_record(files: dict[str, bytes], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, normals, valid) of one streamed record; DataFormatError names the record and what is wrong."""
    import io

    from model.normals.encoding import decode_normals_png

    images = [name for name in files if name.lower() in ("png", "jpg", "jpeg")]
    if len(images) != 1 or "normals.png" not in files:
        raise DataFormatError(f"record {key!r} has members {sorted(files)}; expected one of png|jpg|jpeg, "
                              f"normals.png and optionally mask.png ({RECORD_FORMAT})")
    try:
        image = read_rgb(io.BytesIO(files[images[0]]))
        normals, valid = decode_normals_png(files["normals.png"])
        if "mask.png" in files:
            mask = read_mask(io.BytesIO(files["mask.png"]))
            if mask.shape != valid.shape:
                raise DataFormatError("mask size differs from its image")
            valid &= mask
    except DataFormatError as exc:
        raise DataFormatError(f"record {key!r}: {exc}") from None
    except Exception as exc:
        raise DataFormatError(f"record {key!r}: cannot decode ({exc})") from exc
    if normals.shape[:2] != image.shape[:2]:
        raise DataFormatError(f"record {key!r}: normal map size differs from its image")
    return image, normals, valid


def make_item(image: np.ndarray, normals: np.ndarray, valid: np.ndarray, image_size: int, augment: bool,
              seed: int, epoch: int, index: int) -> dict[str, torch.Tensor]:
    img, nrm, val = DecodedStore.unpack(DecodedStore.pack(*resized_tensors(image, normals, valid, image_size)))
    return finish_item(img, nrm, val, image_size, augment, seed, epoch, index)


def resized_tensors(image: np.ndarray, normals: np.ndarray, valid: np.ndarray, image_size: int):
    """(3xHxW float image in [0, 1], 3xHxW normals, 1xHxW float valid), shorter side = ``image_size``."""
    img = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    nrm = torch.from_numpy(normals).permute(2, 0, 1)
    val = torch.from_numpy(valid)[None].float()
    return _resize_shorter_side(img, nrm, val, image_size)


def finish_item(img: torch.Tensor, nrm: torch.Tensor, val: torch.Tensor, image_size: int, augment: bool,
                seed: int, epoch: int, index: int) -> dict[str, torch.Tensor]:
    """Crop (and augment) a resized sample into the network's item."""
    # Augmentation is a pure function of (seed, epoch, index): resumed runs and any number of
    # loader workers see exactly the same crops and flips.
    if augment:
        rng = np.random.default_rng([seed, epoch, index])
        top, left = aug.random_window(*img.shape[-2:], image_size, rng)
        window = (..., slice(top, top + image_size), slice(left, left + image_size))
        img, nrm, val = img[window], nrm[window], val[window]
        if rng.random() < 0.5:
            img, nrm, val = aug.mirror(img, nrm, val)
        img = aug.photometric(img, rng)
    else:
        img, nrm, val = _crop(img, nrm, val, image_size, None)
    return {"input": normalize_input(img), "normals": nrm.contiguous(), "valid": val.bool()}


def _resize_shorter_side(img, nrm, val, size: int):
    h, w = img.shape[-2:]
    scale = size / min(h, w)
    if scale == 1.0:
        return img, nrm, val
    out = (max(size, round(h * scale)), max(size, round(w * scale)))
    img = F.interpolate(img[None], size=out, mode="bilinear", antialias=True, align_corners=False)[0]
    nrm = F.interpolate(nrm[None], size=out, mode="nearest-exact")[0]
    val = F.interpolate(val[None], size=out, mode="nearest-exact")[0]
    return img.clamp_(0, 1), nrm, val


def _crop(img, nrm, val, size: int, rng: np.random.Generator | None):
    h, w = img.shape[-2:]
    if rng is None:
        top, left = (h - size) // 2, (w - size) // 2
    else:
        top, left = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    window = (..., slice(top, top + size), slice(left, left + size))
    return img[window], nrm[window], val[window]
