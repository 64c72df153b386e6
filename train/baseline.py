"""The drift baseline ``train`` leaves beside the weights (``drift_baseline.json``, format in model/drift.py).

It summarises the training inputs as a client would send them (the raw image files, not the training crops)
and the model's own predictions on validation images, made by serving's own stages (``model.inference``: prepare,
forward, finish) on the trainer's runtime, so serving and ``docker run IMAGE monitor`` compare like with like.

The family decides what is summarised, through two optional hooks it declares in its spec (none needed for
image families whose samples carry an ``image`` path, like the built-in one):
  ``baseline_image(sample) -> HxWx3 uint8 | None``   the raw input of a sample (default: the file at sample.image)
  ``summarize_prediction(prediction) -> drift.Summary | None``   (default: no prediction summary)
Pipe-mode records are read through their image member (and, the stream being gone at the end, the inputs
are summarised from the held-out validation records). With no usable sample no baseline is written.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch import nn

from model import drift
from model.artifact import atomic_write_bytes
from model.family import ModelFamily
from model.images import image_to_rgb8
from model.inference import predict_one
from model.runtime import Runtime

log = logging.getLogger(__name__)

#: Enough for stable histograms (the sampling grid gives ~9000 pixels per image), bounded cost at job end.
MAX_INPUT_IMAGES = 512
MAX_PREDICTION_IMAGES = 32
_RECORD_IMAGES = ("png", "jpg", "jpeg")


def _spread(samples: Sequence[Any], limit: int) -> list[Any]:
    """At most ``limit`` samples spread evenly over the list (deterministic)."""
    if len(samples) <= limit:
        return list(samples)
    return [samples[int(i)] for i in np.linspace(0, len(samples) - 1, limit).round()]


def raw_image(family: ModelFamily, sample: Any) -> np.ndarray | None:
    """The sample's input as a client would send it: the family's ``baseline_image``, else the file at
    ``sample.image`` (File mode), else the image member of a Pipe-mode record (``sample.files["png"]`` ...)."""
    if family.spec.has("baseline_image"):
        return family.baseline_image(sample)
    path = getattr(sample, "image", None)
    files = getattr(sample, "files", None)
    if isinstance(path, Path):
        source: Any = path
    elif isinstance(files, dict) and (member := next((k for k in _RECORD_IMAGES if k in files), None)):
        source = io.BytesIO(files[member])
    else:
        return None
    with Image.open(source) as im:
        return image_to_rgb8(im)  # 16-bit grey scaled as training and serving read it, not clipped


def build_baseline(family: ModelFamily, network: nn.Module, runtime: Runtime, preprocessing: dict[str, Any],
                   train_samples: Sequence[Any], validation_samples: Sequence[Any]) -> drift.Baseline | None:
    inputs = drift.Aggregate()
    # A Pipe-mode train stream is gone by now; its held-out validation records come from the same stream.
    for sample in _spread(train_samples or validation_samples, MAX_INPUT_IMAGES):
        image = raw_image(family, sample)
        if image is not None:
            inputs.add(drift.summarize_image(image))
    if not inputs.count:
        return None
    predictions = drift.Aggregate()
    if family.spec.has("summarize_prediction"):
        summarize = family.summarize_prediction
        was_training = network.training
        network.eval()
        for sample in _spread(validation_samples or train_samples, MAX_PREDICTION_IMAGES):
            image = raw_image(family, sample)
            if image is None:
                continue  # this sample has no input a client could send; the others still count
            summary = summarize(predict_one(family, network, runtime, preprocessing, image))
            if summary is None:
                break  # the family summarises no predictions (the base class's default)
            predictions.add(summary)
        network.train(was_training)
    return drift.Baseline(inputs, predictions if predictions.count else None)


def write_baseline(job: Any, network: nn.Module, runtime: Runtime, splits: Any) -> Path | None:
    """Write ``drift_baseline.json`` into the job's model directory; the path, or None when nothing to summarise.

    ``runtime`` is the trainer's, the one ``network`` was placed with (its layout decided); predictions run in the
    precision serving uses (``Runtime.for_inference``). ``job`` is a
    ``train.loop.TrainJob`` and ``splits`` a ``train.data.Splits`` (typed loosely: the loop imports us).
    """
    preprocessing = job.family.preprocessing(job.arch, job.config.image_size)
    baseline = build_baseline(job.family, network, runtime.for_inference(), preprocessing, splits.train,
                              splits.validation)
    if baseline is None:
        log.info("no drift baseline: no training sample has an input image this module can read")
        return None
    path = Path(job.paths.model_dir) / drift.BASELINE_FILE
    atomic_write_bytes(path, baseline.to_json().encode())
    log.info("drift baseline of %d training images and %d predictions in %s", baseline.inputs.count,
             baseline.predictions.count if baseline.predictions else 0, path)
    return path
