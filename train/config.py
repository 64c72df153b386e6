"""Hyperparameters: parsed once, from strings, into a frozen typed config.

SageMaker hands every hyperparameter over as a string; the SageMaker Python SDK sometimes JSON-quotes
them (``"\\"0.001\\""``) and a plain ``Estimator`` sends Python's ``"True"``. The toolkit has already
JSON-decoded what it could. Everything funnels through :func:`parse_hyperparameters`.

``python -m train.config`` prints the table of every hyperparameter (used in the README).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from model.precision import PRECISIONS
from train.errors import UserError

if TYPE_CHECKING:
    from model.family import ModelFamily
    from model.spec import FamilySpec

DEFAULT_FAMILY = "model.normals.family:SurfaceNormals"


def _hp(default: Any, help: str, check: Callable[[Any], bool] | None = None, rule: str = "") -> Any:
    return field(default=default, metadata={"help": help, "check": check, "rule": rule})


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = _hp(300, "Passes over the training set (at most this many when `max_minutes` is set).",
                      lambda v: 1 <= v <= 100_000, "1..100000")
    max_minutes: float = _hp(9.25, "Time budget: after the fourth epoch, as many whole epochs as fit in this many "
                             "minutes of training and validation (start-up and the final evaluation come on "
                             "top); 0 = run all `epochs`.", lambda v: 0 <= v <= 100_000, "0..100000")
    batch_size: int = _hp(16, "Images per step on each GPU/process (global batch = this x processes).",
                          lambda v: 1 <= v <= 4096, "1..4096")
    learning_rate: float = _hp(1e-3, "Peak AdamW learning rate (for the global batch).", lambda v: 0 < v <= 10,
                               "(0, 10]")
    weight_decay: float = _hp(1e-4, "AdamW weight decay.", lambda v: 0 <= v <= 10, "[0, 10]")
    lr_schedule: str = _hp("cosine", "Learning-rate schedule after a 3% linear warm-up.",
                           lambda v: v in ("cosine", "constant"), "cosine | constant")
    image_size: int = _hp(128, "Frame side in pixels for training, validation and the saved model (see the "
                          "resize/crop rule); a multiple of 2**depth.", lambda v: 16 <= v <= 2048, "16..2048")
    crop_fraction: float = _hp(0.75, "Training windows: a random square of crop_fraction x image_size (to the "
                               "nearest multiple of 2**depth) of each augmented frame, for more steps per minute; "
                               "validation and serving see whole frames; 1 = whole frames. For families with the "
                               "dataset_crop hook, in File mode.", lambda v: 0 < v <= 1, "(0, 1]")
    validation_fraction: float = _hp(0.1, "Share of `train` held out for validation when there is no "
                                     "`validation` channel.", lambda v: 0 <= v < 0.9, "[0, 0.9)")
    # 32 bits: numpy's generators refuse negative seeds, and the sampler multiplies the seed into an int64.
    seed: int = _hp(0, "Seed for initialisation, the split, shuffling and augmentation.",
                    lambda v: 0 <= v <= 2**32 - 1, "0..4294967295")
    ema_decay: float = _hp(0.0, "Exponential moving average of the weights (e.g. 0.995), used for validation and "
                           "the saved model; 0 = off (measured no gain with the cosine schedule).",
                           lambda v: 0 <= v < 1, "[0, 1)")
    augment: bool = _hp(True, "Random crops, left-right mirroring and colour jitter during training.")
    data_workers: int = _hp(-1, "DataLoader worker processes; -1 = once the data is decoded in memory none on "
                            "CPU and min(3, CPUs - 1) for a GPU, else min(4, CPUs). Files are decoded into memory "
                            "once per job whenever they fit, whatever this says.", lambda v: -1 <= v <= 64, "-1..64")
    precision: str = _hp("auto", "auto (bf16 on GPUs that have it, else fp16; on CPUs bf16 where they compute it "
                         "natively (AVX512-BF16, AMX), else fp32), fp32, bf16, fp16.",
                         lambda v: v in PRECISIONS, " | ".join(PRECISIONS))
    channels_last: str = _hp("auto", "NHWC memory layout: auto (where measured faster, see model/runtime.py), "
                             "true, false.", lambda v: v.lower() in ("auto", "true", "false"), "auto | true | false")
    compile: bool = _hp(False, "torch.compile the network (slow first step; pays off on long GPU runs).")
    checkpoint_steps: int = _hp(200, "Also checkpoint every N optimizer steps (0 = only at epoch ends).",
                                lambda v: 0 <= v <= 1_000_000, "0..1000000")
    keep_checkpoints: int = _hp(3, "Newest checkpoints kept in the checkpoint directory.",
                                lambda v: 1 <= v <= 1000, "1..1000")
    log_every_steps: int = _hp(20, "Progress line (loss, images/s, ETA) every N steps.",
                               lambda v: 1 <= v <= 1_000_000, "1..1000000")
    panels: int = _hp(4, "Validation panels (input | truth | prediction) written to output/data.",
                      lambda v: 0 <= v <= 64, "0..64")
    synthetic_samples: int = _hp(0, "Train on N generated scenes instead of a `train` channel (demo/tests "
                                 "only; never used as a fallback).", lambda v: 0 <= v <= 100_000, "0..100000")
    synthetic_size: int = _hp(128, "Side of the generated scenes in pixels.", lambda v: 16 <= v <= 1024, "16..1024")
    model_family: str = _hp(DEFAULT_FAMILY, "The model, as package.module:ClassName (bring your own model).")


def _coerce(name: str, raw: Any, kind: type) -> Any:
    value = raw
    if isinstance(value, str):
        text = value.strip()
        # The SDK JSON-quotes values of framework estimators: '"0.001"' means 0.001.
        if len(text) >= 2 and text[0] == text[-1] == '"':
            try:
                text = json.loads(text)
            except json.JSONDecodeError:
                pass
        value = text
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("false", "0", "no", "off"):
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ValueError("expected a boolean (true/false)")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                as_float = float(value)  # "1e3" or "10.0" are fine if integral
                if as_float.is_integer():
                    return int(as_float)
                raise ValueError("expected an integer") from None
        if isinstance(value, int):
            return value
        raise ValueError("expected an integer")
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("expected a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            return json.dumps(value)
        return value
    raise TypeError(f"unsupported hyperparameter type {kind} for {name}")


def _type_of(f: dataclasses.Field) -> type:
    # Annotations are strings under `from __future__ import annotations`.
    name = f.type if isinstance(f.type, str) else f.type.__name__
    return {"int": int, "float": float, "bool": bool, "str": str}[name]


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        raw = values[f.name]
        try:
            v = _coerce(f.name, raw, _type_of(f))
        except (ValueError, TypeError, ArithmeticError) as exc:  # OverflowError: float(a 401-digit int)
            shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:40] + f"... ({len(repr(raw))} characters)"
            raise UserError(
                f"hyperparameter {f.name!r} has the bad value {shown} ({exc})",
                f"give {f.name} a value that is {f.metadata.get('rule') or _type_of(f).__name__}",
            ) from None
        check = f.metadata.get("check")
        if check is not None and not check(v):
            shown = repr(raw) if len(repr(raw)) <= 60 else repr(raw)[:40] + f"... ({len(repr(raw))} characters)"
            raise UserError(
                f"hyperparameter {f.name!r} has the bad value {shown}, outside {f.metadata['rule']}",
                f"choose a value for {f.name} in {f.metadata['rule']}",
            )
        kwargs[f.name] = v
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the family config's own validation
        raise UserError(f"invalid model hyperparameters: {exc}", "change the value named above") from None


def is_user_hyperparameter(name: str) -> bool:
    # `_tuning_objective_metric` comes from tuning jobs; `sagemaker_*` from the SDK's framework estimators.
    return not (name.startswith("_") or name.startswith("sagemaker_"))


def split_hyperparameters(raw: Mapping[str, Any], spec: FamilySpec | None) -> tuple[TrainConfig, Any]:
    """Parse the user's hyperparameters into (training config, architecture config of ``spec``'s family).

    Unknown names fail with the list of valid ones. Needs no torch: launchers call it on a laptop, with
    ``spec=None`` when the family's spec is not importable there (then only training names are allowed and
    the architecture config is None).
    """
    values = {k: v for k, v in raw.items() if is_user_hyperparameter(k)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    model_fields = set() if spec is None else {f.name for f in dataclasses.fields(spec.config_type)}
    unknown = sorted(set(values) - train_fields - model_fields)
    if unknown:
        raise UserError(
            f"unknown hyperparameter(s) {', '.join(unknown)}",
            f"use only these names: {', '.join(sorted(train_fields | model_fields))}",
        )
    config = _build(TrainConfig, {k: v for k, v in values.items() if k in train_fields})
    if spec is None:
        return config, None
    arch = _build(spec.config_type, {k: v for k, v in values.items() if k in model_fields})
    multiple = spec.input_multiple(arch)
    if config.image_size % multiple:
        raise UserError(
            f"image_size {config.image_size} is not a multiple of the network stride {multiple}",
            f"use an image_size divisible by {multiple} (e.g. {config.image_size // multiple * multiple or multiple})",
        )
    return config, arch


def crop_side(config: TrainConfig, multiple: int) -> int:
    """Side of the training windows: ``crop_fraction`` x ``image_size`` to the nearest multiple of the network
    stride (halves up), at least one stride and at most ``image_size`` (then training sees whole frames).

    A fraction, not a side, so the measured share (3/4 of 128 px) carries over to other frame sizes: 48-px
    windows at the quick start's 64 px."""
    side = math.floor(config.crop_fraction * config.image_size / multiple + 0.5) * multiple
    return min(config.image_size, max(multiple, side))


def parse_hyperparameters(raw: Mapping[str, Any]) -> tuple[TrainConfig, ModelFamily, Any]:
    """(training config, model family, architecture config) from the raw hyperparameter map."""
    # Imported here, not at the top: the family pulls in torch, which launchers must not need.
    from model.family import load_family

    family_path = _coerce("model_family", raw.get("model_family", DEFAULT_FAMILY), str)
    try:
        family = load_family(family_path)
    except ValueError as exc:
        raise UserError(f"hyperparameter 'model_family': {exc}", "name a ModelFamily subclass in the image") from None
    config, arch = split_hyperparameters(raw, family.spec)
    return config, family, arch


def markdown_table(cls: type = TrainConfig) -> str:
    rows = ["| name | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        rule = f.metadata.get("rule", "") if f.metadata else ""
        text = f.metadata.get("help", "") if f.metadata else ""
        cells = [f"`{f.name}`", _type_of(f).__name__, f"`{f.default}`", rule, text]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    from model.normals.config import UNetConfig

    print(markdown_table(TrainConfig))
    print()
    print(markdown_table(UNetConfig))
