"""The predictor: the seam between HTTP and the model. Loads once, predicts many times, knows no HTTP.

Work is split so the HTTP layer can overlap it: ``prepare`` (decode to a tensor, on request threads),
``forward`` (one batched pass, on one of the inference threads), ``finish`` (back to an array, request
threads). ``predict`` chains them for callers that need no batching (tests, benchmarks).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model import inference
from model.artifact import LoadedModel, load_model_dir
from model.runtime import Runtime, select_runtime
from serve.fusion import fold_batch_norms

log = logging.getLogger(__name__)


#: A GPU worker warms every batch size up to this one (the default largest batch is 8); beyond it, powers of two
#: and the largest: a SERVE_MAX_BATCH_SIZE of 1024 would otherwise mean 1024 warm-up passes.
GPU_WARM_EVERY_SIZE_UP_TO = 16


def warm_up_batch_sizes(max_batch_size: int, on_gpu: bool) -> list[int]:
    """The batch sizes a worker warms up before it accepts, its batcher forming batches up to ``max_batch_size``.

    On GPU every size up to ``GPU_WARM_EVERY_SIZE_UP_TO`` (above it, powers of two and the largest): cuDNN
    autotunes each new shape (``cudnn.benchmark``), and the batcher forms batches of any size up to its
    maximum as load varies, so a size left out stalls the first request that meets it. On CPU, where nothing
    is tuned per shape, the smallest and the largest.
    """
    top = max(1, max_batch_size)
    if not on_gpu:
        return sorted({1, top})
    powers = {1 << k for k in range(top.bit_length()) if 1 << k <= top}
    return sorted({*range(1, min(top, GPU_WARM_EVERY_SIZE_UP_TO) + 1), *powers, top})


class Predictor:
    def __init__(self, loaded: LoadedModel, runtime: Runtime) -> None:
        self.family = loaded.family
        self.preprocessing: dict[str, Any] = loaded.preprocessing
        self.meta = loaded.meta
        # The predictor owns ``loaded.network``: folded, moved and converted in place, never trained again.
        network = loaded.network
        self.folded_batch_norms = fold_batch_norms(network)
        network = network.to(runtime.device)
        self.runtime = runtime = runtime.for_model(network, training=False)
        if runtime.channels_last:
            network = network.to(memory_format=torch.channels_last)
        self.network = network.eval()  # once, here: never per request
        for p in self.network.parameters():
            p.requires_grad_(False)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: Path,
        *,
        device: str | None = None,
        precision: str = "auto",
        cpu_threads: int | None = None,
    ) -> Predictor:
        """Load ``model_dir`` (weights only, read only) onto the device chosen by ``select_runtime``."""
        runtime = select_runtime(precision=precision, device=device, cpu_threads=cpu_threads)
        return cls(load_model_dir(Path(model_dir), map_location="cpu"), runtime)

    @property
    def device_type(self) -> str:
        return self.runtime.device.type

    def describe(self) -> str:
        threads = f" threads={torch.get_num_threads()}" if not self.runtime.is_cuda else ""
        return (f"{self.runtime.describe()}{threads} family={self.meta.get('family')} "
                f"batchnorms_folded={self.folded_batch_norms}")

    # -- the three stages ------------------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """One checked HxWx3 image to a CxH'xW' float32 CPU tensor (padding etc. by the family)."""
        return inference.prepare(self.family, self.preprocessing, image)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """NxCxHxW inputs (one shape) to float32 CPU outputs, in one pass."""
        return inference.forward(self.network, self.runtime, batch)

    def finish(self, output: torch.Tensor, image_shape: tuple[int, ...]) -> np.ndarray:
        """One output back to an HxWx3 float32 array the size of the request image."""
        return inference.finish(self.family, output, image_shape)

    def summarize_prediction(self, prediction: np.ndarray) -> Any:
        """The family's drift summary of one prediction (None if it keeps none): see ``serve.drift``."""
        if not self.family.spec.has("summarize_prediction"):
            return None
        return self.family.summarize_prediction(prediction)

    def predict(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Predictions for checked images, same count and order; same-shaped inputs share a pass."""
        inputs = [self.prepare(img) for img in images]
        outputs: list[torch.Tensor | None] = [None] * len(images)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, t in enumerate(inputs):
            groups.setdefault(tuple(t.shape), []).append(i)
        for idx in groups.values():
            out = self.forward(torch.stack([inputs[i] for i in idx]))
            for j, i in enumerate(idx):
                outputs[i] = out[j]
        return [self.finish(o, img.shape) for o, img in zip(outputs, images, strict=True)]  # type: ignore[arg-type]

    def warm_up(self, batch_sizes: Sequence[int] = (1,), rounds: int = 1) -> float:
        """Run the whole path once per batch size before serving, so the first request pays no one-off costs
        (which sizes: ``warm_up_batch_sizes``).

        On GPU the pass runs at the training image size: cuDNN autotunes per shape. On CPU a small image is
        enough: measured here, a first 256x256 pass costs 116 ms against 110 ms steady, and after a 32x32
        warm-up 134 ms, so a full-size warm-up would add ~0.1 s of cold start to save ~20 ms once.
        Returns the seconds spent.
        """
        start = time.perf_counter()
        size = int(self.preprocessing.get("image_size", 256))
        if not self.runtime.is_cuda:
            size = min(size, 64)
        image = np.zeros((size, size, 3), dtype=np.uint8)
        for n in batch_sizes:
            batch = torch.stack([self.prepare(image)] * n)
            for _ in range(rounds):
                self.forward(batch)
        if self.runtime.is_cuda:
            torch.cuda.synchronize(self.runtime.device)
        return time.perf_counter() - start
