"""Evaluation of a split: loss and the family's metrics summed over ranks, validation panels, and once, the
metrics of the family's constant answer (the baseline that puts the model's numbers in context)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from model.runtime import Runtime
from train.assembly import to_device
from train.data import EpochSampler, make_loader
from train.feed import declared_preload, eval_dataset
from train.job import TrainJob
from train.outputs import constant_baseline
from train.scope import DataScope


class Evaluator:
    def __init__(self, job: TrainJob, scope: DataScope, runtime: Runtime) -> None:
        self.job, self.scope, self.runtime = job, scope, runtime
        self.baseline: dict[str, float] | None = None
        self._datasets: dict[str, tuple[Any, Any]] = {}

    def _dataset(self, samples: Any, split: str) -> Any:
        """One dataset per split and sample list for the whole job, so decoded samples stay in memory."""
        cached = self._datasets.get(split)
        if cached is not None and cached[0] is samples:
            return cached[1]
        dataset = eval_dataset(self.job, self.scope, samples, split)
        self._datasets[split] = (samples, dataset)
        return dataset

    def _loader(self, samples: Any, split: str, from_validation_source: str) -> Any:
        c = self.job.config
        channel = split if split == "test" or from_validation_source == "channel" else "train"
        rank, world = self.scope.shard_of(channel)
        sampler = EpochSampler(len(samples), seed=c.seed, epoch=0, shuffle=False, rank=rank, world_size=world)
        dataset = self._dataset(samples, split)
        return make_loader(dataset, sampler, c.batch_size, c, pin=self.runtime.is_cuda,
                           preload=declared_preload(self.job, dataset))

    @torch.inference_mode()
    def evaluate(self, model: nn.Module, samples: Any, split: str, validation_source: str,
                 panels: int = 0, final: bool = False) -> tuple[dict[str, float], list]:
        """``model``: the bare network or the weight average, never the DDP wrapper: ranks may hold different
        numbers of evaluation batches (host-local shards), and DDP's forward would broadcast BatchNorm
        buffers collectively. ``final``: in the precision serving uses (float32 on a CPU after bf16
        training), so the reported final metrics are those of the answers an endpoint gives."""
        job = self.job
        rt = self.runtime.for_inference() if final else self.runtime
        loader = self._loader(samples, split, validation_source)
        model.eval()
        metrics = job.family.metrics()
        reference = job.family.metrics()  # the family's constant answer, for context
        has_constant = job.family.spec.has("constant_prediction")
        loss_sum = torch.zeros(2, dtype=torch.float64)
        pictures = []
        for batch in loader:
            batch = to_device(batch, rt)
            with rt.autocast():
                outputs = model(batch["input"])
                loss = job.family.loss(outputs, batch)
            n = batch["input"].shape[0]
            loss_sum += torch.tensor([float(loss) * n, n], dtype=torch.float64)
            metrics.update(outputs.float(), batch)
            constant = job.family.constant_prediction(batch) if self.baseline is None and has_constant else None
            if constant is not None:
                reference.update(constant, batch)
            for i in range(min(n, panels - len(pictures))):
                pictures.append(job.family.panel(batch, outputs, i))
        state = job.dist.all_reduce_sum(torch.cat([loss_sum, metrics.state()]).to(rt.device)).cpu()
        metrics.load_state(state[2:])
        if self.baseline is None and split == "validation":
            self.baseline = constant_baseline(job, reference, rt.device)
        result = {f"{split}:loss": float(state[0] / max(state[1], 1))}
        result.update({f"{split}:{k}": v for k, v in metrics.compute().items()})
        return result, pictures
