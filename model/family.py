"""The seam between the SageMaker plumbing and a model.

A *family* bundles everything model-specific: the network and its typed config, the on-disk dataset
format, loss and metrics, and the conversion between request images and tensors. Training and serving
call only these methods, and read the torch-free facts from the family's ``spec`` (:mod:`model.spec`), so a
user brings their own model by writing a spec and one subclass and naming it in the ``model_family``
hyperparameter (``package.module:ClassName``).
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from model.spec import FAMILY_METHOD_HOOKS, HOOKS, FamilySpec

Batch = dict[str, torch.Tensor]


class DataFormatError(ValueError):
    """A dataset on disk does not follow the family's documented format (names the file)."""


class MetricAccumulator(ABC):
    """Accumulates metrics over batches. State lives in tensors so it can be summed across ranks.

    Most families need not write one: the default (:class:`MeanMetrics`) averages the per-sample values of
    ``ModelFamily.sample_metrics``. Write one for metrics that are not means of per-sample values (a median).
    """

    @abstractmethod
    def update(self, outputs: torch.Tensor, batch: Batch) -> None: ...

    @abstractmethod
    def state(self) -> torch.Tensor:
        """A 1-D float64 tensor whose element-wise sum over ranks is the global state."""

    @abstractmethod
    def load_state(self, state: torch.Tensor) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, float]: ...


class MeanMetrics(MetricAccumulator):
    """Means over samples of the per-sample metric tensors a family's ``sample_metrics`` returns."""

    def __init__(self, names: Sequence[str], per_sample: Callable[[torch.Tensor, Batch], Mapping[str, torch.Tensor]]):
        self.names, self._per_sample = tuple(names), per_sample
        self._state = torch.zeros(len(self.names) + 1, dtype=torch.float64)  # sums, then the sample count

    def update(self, outputs: torch.Tensor, batch: Batch) -> None:
        values = self._per_sample(outputs, batch)
        if set(values) != set(self.names):
            raise ValueError(f"sample_metrics returned {sorted(values)}, but the spec declares metrics "
                             f"{sorted(self.names)}; return exactly those")
        rows = [values[n].detach().double().reshape(-1).cpu() for n in self.names]
        self._state[:-1] += torch.stack([r.sum() for r in rows])
        self._state[-1] += rows[0].numel()

    def state(self) -> torch.Tensor:
        return self._state.clone()

    def load_state(self, state: torch.Tensor) -> None:
        self._state = state.double().cpu().clone()

    def compute(self) -> dict[str, float]:
        count = float(self._state[-1])
        return {} if count == 0 else {n: float(v) / count for n, v in zip(self.names, self._state[:-1], strict=True)}


class ModelFamily(ABC):
    """Everything model-specific. Subclass it, set ``spec``, write the four abstract methods and
    ``sample_metrics`` (or your own ``metrics()``).

    Everything else has a default that suits an image-to-image model whose inputs are RGB in [0, 1] and whose
    outputs are CxHxW in the spec's ``output_range``; override what does not fit. The optional hooks are
    called only when ``spec.hooks`` declares them, and declaring one without writing it (or writing one
    without declaring it) fails when the class is defined.
    """

    #: This family's :class:`model.spec.FamilySpec` (the ``SPEC`` of its torch-free ``spec.py``).
    spec: ClassVar[FamilySpec]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_hooks(cls)

    # -- required: network, data, objective ---------------------------------------------------------
    @abstractmethod
    def build(self, config: Any) -> nn.Module:
        """A freshly initialised network for ``config`` (an instance of ``spec.config_type``)."""

    @abstractmethod
    def index(self, channel_dir: Path) -> Sequence[Any]:
        """List a channel's samples (cheap: names only); raise DataFormatError for a broken layout."""

    @abstractmethod
    def dataset(self, samples: Sequence[Any], *, image_size: int, augment: bool, seed: int) -> Dataset:
        """A map-style dataset over ``samples`` whose items are dicts of tensors incl. ``"input"``.

        Random augmentation must be a pure function of (seed, epoch, index) so resumed runs repeat it;
        the dataset gets the epoch through ``set_epoch`` when the spec declares ``dataset_set_epoch``.
        """

    @abstractmethod
    def loss(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor: ...

    def sample_metrics(self, outputs: torch.Tensor, batch: Batch) -> Mapping[str, torch.Tensor]:
        """Each of ``spec.metrics`` for every sample of the batch (a length-N tensor per name).

        Write this (the usual case) or override ``metrics()`` with your own accumulator; one of the two.
        """
        raise NotImplementedError(f"{type(self).__name__} writes neither sample_metrics nor metrics()")

    # -- defaults ----------------------------------------------------------------------------------
    def metrics(self) -> MetricAccumulator:
        """A fresh accumulator of ``spec.metrics``; the default averages ``sample_metrics`` over samples."""
        return MeanMetrics(self.spec.metrics, self.sample_metrics)

    def preprocessing(self, config: Any, image_size: int) -> dict[str, Any]:
        """JSON-serialisable facts serving needs to prepare inputs like training did (saved in model.json)."""
        return {"image_size": image_size, "pad_multiple": self.spec.input_multiple(config)}

    def to_input(self, image: np.ndarray, preprocessing: Mapping[str, Any]) -> torch.Tensor:
        """One HxWx3 image (uint8, or float in [0, 1]) to a 3xH'xW' float32 input in [0, 1], padded (centred)
        to a multiple of ``preprocessing["pad_multiple"]``."""
        return to_padded_tensor(image, int(preprocessing.get("pad_multiple", 1)))

    def from_output(self, output: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray:
        """One CxH'xW' output back to an HxWxC array the size of the request image (undoes the centred pad)."""
        h, w = image_shape[:2]
        top, left = (output.shape[-2] - h) // 2, (output.shape[-1] - w) // 2
        return output[:, top : top + h, left : left + w].float().permute(1, 2, 0).cpu().numpy()

    def to_image(self, prediction: np.ndarray) -> np.ndarray:
        """A prediction as an HxWx3 uint8 picture (``Accept: image/png``): ``output_range`` spread over 0..255,
        one channel as grey, the first three otherwise."""
        low, high = self.spec.output_range
        scaled = np.clip((prediction - low) / (high - low), 0.0, 1.0) * 255.0
        picture = np.rint(scaled).astype(np.uint8)
        return np.repeat(picture[..., :1], 3, axis=-1) if picture.shape[-1] < 3 else picture[..., :3]

    def panel(self, batch: Batch, outputs: torch.Tensor, index: int) -> np.ndarray:
        """An HxWx3 uint8 picture of one validation sample for people: input | prediction."""
        image = batch["input"][index, :3].detach().float().cpu()
        image = ((image - image.min()) / (image.max() - image.min()).clamp_min(1e-6) * 255).round()
        image = image.byte().permute(1, 2, 0).numpy()
        if image.shape[-1] < 3:
            image = np.repeat(image[..., :1], 3, axis=-1)
        prediction = self.to_image(outputs[index].detach().float().cpu().permute(1, 2, 0).numpy())
        return np.concatenate([image, prediction], axis=1)


def to_padded_tensor(image: np.ndarray, multiple: int) -> torch.Tensor:
    """HxWx3 (uint8 or float in [0, 1]) to 3xH'xW' float32, padded centred to a multiple of ``multiple``."""
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    t = t.float().div_(255.0) if t.dtype == torch.uint8 else t.float()
    h, w = t.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        # Reflection keeps image statistics at the border; it needs the pad to be smaller than the side.
        # Centred, so the network's frame coordinates keep the image centre where it is.
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        t = F.pad(t[None], (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2), mode=mode)[0]
    return t


def check_hooks(cls: type) -> None:
    """A concrete family writes exactly the family-method hooks its spec declares (no silent fallback)."""
    spec = getattr(cls, "spec", None)
    if spec is None:
        return  # an abstract intermediate class
    if not isinstance(spec, FamilySpec):
        raise TypeError(f"{cls.__name__}.spec must be a model.spec.FamilySpec, not {type(spec).__name__}")
    # ABCMeta sets __abstractmethods__ only after __init_subclass__ has run, so look at the methods themselves.
    abstract = ModelFamily.__abstractmethods__
    if any(getattr(getattr(cls, name, None), "__isabstractmethod__", False) for name in abstract):
        return  # still abstract: checked on the concrete subclass
    if cls.sample_metrics is ModelFamily.sample_metrics and cls.metrics is ModelFamily.metrics:
        raise TypeError(f"{cls.__name__} must write sample_metrics(outputs, batch) (or its own metrics())")
    written = {h for h in FAMILY_METHOD_HOOKS if callable(getattr(cls, h, None))}
    declared = {h for h in FAMILY_METHOD_HOOKS if spec.has(h)}
    if written - declared:
        raise TypeError(f"{cls.__name__} writes hook(s) {sorted(written - declared)} that its spec does not declare; "
                        f"add them to FamilySpec(hooks=...) (declared: {sorted(spec.hooks)})")
    if declared - written:
        raise TypeError(f"{cls.__name__}'s spec declares hook(s) {sorted(declared - written)} that the class does "
                        f"not write; write them or remove them from hooks (valid hooks: {sorted(HOOKS)})")


def check_dataset_hooks(spec: FamilySpec, dataset: Any) -> None:
    """The dataset has exactly the dataset hooks the spec declares (a misspelt method fails here, loudly)."""
    hooks = (("dataset_set_epoch", "set_epoch"), ("dataset_preload", "preload"), ("dataset_crop", "set_crop"))
    for hook, method in hooks:
        has = callable(getattr(dataset, method, None))
        if has != spec.has(hook):
            say = "has" if has else "lacks"
            raise TypeError(f"the family's dataset {type(dataset).__name__} {say} {method}() but the spec "
                            f"{'does not declare' if has else 'declares'} the {hook!r} hook; make them agree "
                            f"(declared hooks: {sorted(spec.hooks)})")


def family_path(family: ModelFamily | type[ModelFamily]) -> str:
    cls = family if isinstance(family, type) else type(family)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_family(path: str) -> ModelFamily:
    """Instantiate the family named ``package.module:ClassName``."""
    module_name, sep, class_name = path.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"model family {path!r} must look like 'package.module:ClassName'")
    try:
        module = importlib.import_module(module_name)
    except (ImportError, TypeError) as exc:  # TypeError: a hook declaration check refused the class
        raise ValueError(f"model family {path!r}: cannot import {module_name!r} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, ModelFamily)):
        raise ValueError(f"model family {path!r}: {class_name!r} is not a ModelFamily subclass")
    if not isinstance(getattr(cls, "spec", None), FamilySpec):
        raise ValueError(f"model family {path!r}: the class sets no spec (spec = SPEC from its spec.py)")
    return cls()


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def config_from_dict(config_type: type, values: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(config_type)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {config_type.__name__} keys {unknown}; valid: {sorted(names)}")
    return config_type(**values)
