"""The training loop: build, resume, train, validate, checkpoint, stop on request, save the model."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from model.family import ModelFamily, check_dataset_hooks, family_path
from model.runtime import Runtime
from train import metrics_log, schedule
from train.baseline import write_baseline
from train.checkpoint import CheckpointManager
from train.config import TrainConfig
from train.data import EpochSampler, Splits, make_loader
from train.distributed import Dist
from train.ema import WeightAverage
from train.errors import TrainingStopped, UserError
from train.outputs import constant_baseline, write_outputs
from train.scope import DataScope
from train.stream import PipeChannel, Record, RecordDataset, StreamDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainPaths:
    channels: dict[str, Path]
    model_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    #: Channels with S3DistributionType ShardedByS3Key: each host holds only its own part.
    sharded: frozenset[str] = frozenset()
    #: Channels in Pipe input mode: ``channels[name]_<n>`` are FIFOs, one per pass (train/stream.py).
    pipe: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TrainJob:
    config: TrainConfig
    family: ModelFamily
    arch: Any
    paths: TrainPaths
    runtime: Runtime
    dist: Dist = field(default_factory=Dist)
    #: Set from a SIGTERM handler; the loop checkpoints and raises TrainingStopped at the next step.
    stop: threading.Event = field(default_factory=threading.Event)


def _require_compiler() -> None:
    # Inductor generates C++ (CPU) or Triton kernels with a C launcher (GPU): both need a compiler,
    # which the slim runtime image does not carry. Fail before training, not at the first step.
    if not any(shutil.which(cc) for cc in ("cc", "gcc", "g++", "clang")):
        raise UserError(
            "compile=true needs a C/C++ compiler for torch.compile, and none is installed in this image",
            "set compile=false, or rebuild the image with `--build-arg TORCH_COMPILE=1` (adds g++, torch headers)",
        )


def _to_device(batch: dict[str, torch.Tensor], runtime: Runtime) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in batch.items():
        value = value.to(runtime.device, non_blocking=True)
        if runtime.channels_last and value.dim() == 4 and value.is_floating_point():
            value = value.contiguous(memory_format=torch.channels_last)
        out[key] = value
    return out


class Trainer:
    def __init__(self, job: TrainJob) -> None:
        self.job = job
        c, rt = job.config, job.runtime
        self.scope = DataScope(job.family, job.paths, c, job.dist)
        self.streaming = self.scope.streaming
        self.splits: Splits = self.scope.load_splits()
        if not self.splits.train and not self.streaming:
            raise UserError("the training split is empty after holding out validation data",
                            "add training samples or lower validation_fraction")
        torch.manual_seed(c.seed)  # same initial weights on every rank and every retry
        self.raw_model: nn.Module = job.family.build(job.arch).to(rt.device)
        self.runtime = rt = rt.for_model(self.raw_model, training=True)
        if rt.channels_last:
            self.raw_model = self.raw_model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.raw_model.parameters(), lr=c.learning_rate,
                                           weight_decay=c.weight_decay)
        # Samples per rank and epoch: the same on every rank (DDP needs equal step counts), the largest
        # any rank needs when hosts hold shards of different sizes; smaller shards wrap around.
        _, world = self.scope.shard_of("train")
        self.per_rank = job.dist.all_reduce_max(math.ceil(len(self.splits.train) / world), rt.device)
        self.steps_per_epoch = 0 if self.streaming else math.ceil(self.per_rank / c.batch_size)
        # Under a time budget the epoch count is decided after the first epoch (train/schedule.py).
        self.planned_epochs = 0 if schedule.uses_budget(c) else c.epochs
        self.total_steps = self.steps_per_epoch * self.planned_epochs
        self.clock = time.perf_counter  # replaceable in tests
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule.lr_factor(
            c, lambda: self.total_steps, lambda: schedule.warmup_steps(c, self.steps_per_epoch)))
        self.ema = WeightAverage(self.raw_model, c.ema_decay) if c.ema_decay > 0 else None
        self.scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.needs_grad_scaler)
        self.checkpoints = CheckpointManager(job.paths.checkpoint_dir, c.keep_checkpoints)
        self.step = 0
        self.epoch = 0
        self.samples_in_epoch = 0  # per rank, of the current epoch, already trained on
        self.epoch_loss = torch.zeros(2, dtype=torch.float64)  # (sum, count) for the epoch's train:loss
        self.history: list[dict[str, float]] = []
        self.baseline: dict[str, float] | None = None
        self._eval_sets: dict[str, Any] = {}
        model: nn.Module = self.raw_model
        if job.dist.enabled:
            ids = [rt.device.index] if rt.is_cuda else None
            model = DistributedDataParallel(model, device_ids=ids)
        if c.compile:
            _require_compiler()
        self.model = torch.compile(model) if c.compile else model
        if self.streaming:
            self.train_data = StreamDataset(
                job.family, PipeChannel(job.paths.channels["train"]), shard=self.scope.pipe_shard("train"),
                image_size=c.image_size, augment=c.augment, seed=c.seed,
                validation_fraction=0.0 if self.splits.validation_source == "channel" else c.validation_fraction)
        else:
            self.train_data = job.family.dataset(self.splits.train, image_size=c.image_size, augment=c.augment,
                                                 seed=c.seed)
            check_dataset_hooks(job.family.spec, self.train_data)

    def _preload(self, dataset: Any) -> Any:
        """The family dataset's declared ``preload`` (None for Pipe records and families without the hook)."""
        declared = self.job.family.spec.has("dataset_preload") and not isinstance(dataset, RecordDataset)
        return dataset.preload if declared else None

    def _anywhere(self, samples) -> bool:
        """Whether any rank has samples (hosts with shards may differ; all must take the same branch)."""
        return self.job.dist.any(bool(samples), self.runtime.device)

    # -- checkpoints ---------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        return {"family": family_path(self.job.family), "arch": dataclasses.asdict(self.job.arch)}

    def _checkpoint_state(self) -> dict[str, Any]:
        return {
            **self._identity(),
            "step": self.step,
            "epoch": self.epoch,
            "samples_in_epoch": self.samples_in_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.job.dist.world_size,
            "batch_size": self.job.config.batch_size,
            "epoch_loss": self.epoch_loss.clone(),
            "history": json.dumps(self.history),
            "planned_epochs": self.planned_epochs,
            "ema": self.ema.state_dict() if self.ema else None,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def save_checkpoint(self) -> None:
        if self.job.dist.is_main:
            path = self.checkpoints.save(self._checkpoint_state())
            log.info("checkpoint saved: %s (step %d)", path, self.step)
        self.job.dist.barrier()

    def resume(self) -> bool:
        found = self.checkpoints.latest()
        if found is None:
            return False
        path, state = found
        if {"family": state.get("family"), "arch": state.get("arch")} != self._identity():
            raise UserError(
                f"checkpoint {path} was written for another model ({state.get('family')}, {state.get('arch')}) "
                f"than this job's ({self._identity()['family']}, {self._identity()['arch']})",
                "use the same model hyperparameters as the interrupted job, or an empty checkpoint location",
            )
        self.raw_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        # The budget's decision is kept, never re-made: the schedule stays the one already followed.
        self.planned_epochs = int(state.get("planned_epochs") or self.planned_epochs)
        if self.streaming and state.get("steps_per_epoch"):
            self.steps_per_epoch = int(state["steps_per_epoch"])
        self.total_steps = self.steps_per_epoch * self.planned_epochs
        self.history = json.loads(state["history"])
        same_layout = (state["world_size"], state["batch_size"]) == (self.job.dist.world_size,
                                                                     self.job.config.batch_size)
        if same_layout:
            self.samples_in_epoch = int(state["samples_in_epoch"])
            self.epoch_loss = state["epoch_loss"].double()
        else:
            # Another world size or batch size shards the epoch differently: redo the interrupted epoch.
            log.warning("resuming with a different world/batch size: epoch %d restarts from its start", self.epoch)
            self.samples_in_epoch = 0
            self.epoch_loss.zero_()
        log.info("resumed from %s: epoch %d, step %d", path, self.epoch, self.step)
        return True

    # -- loop ----------------------------------------------------------------------------------
    def _check_stop(self) -> None:
        if self.job.dist.any(self.job.stop.is_set(), self.runtime.device):
            self.save_checkpoint()
            raise TrainingStopped(
                f"training stopped by SIGTERM at step {self.step} (epoch {self.epoch + 1}); a checkpoint was "
                f"saved in {self.job.paths.checkpoint_dir} and a job with the same checkpoint location resumes from it"
            )

    def train_epoch(self) -> float:
        job, c, rt = self.job, self.job.config, self.runtime
        if self.streaming:
            self.train_data.set_epoch(self.epoch, skip=self.samples_in_epoch)
            # A FIFO has one reader: records are decoded in this process, no loader workers.
            loader = torch.utils.data.DataLoader(self.train_data, batch_size=c.batch_size, num_workers=0,
                                                 pin_memory=rt.is_cuda)
        else:
            if job.family.spec.has("dataset_set_epoch"):
                self.train_data.set_epoch(self.epoch)
            rank, world = self.scope.shard_of("train")
            sampler = EpochSampler(len(self.splits.train), seed=c.seed, epoch=self.epoch, shuffle=True, rank=rank,
                                   world_size=world, skip=self.samples_in_epoch, per_rank=self.per_rank)
            loader = make_loader(self.train_data, sampler, c.batch_size, c, pin=rt.is_cuda,
                                 preload=self._preload(self.train_data))
        self.model.train()
        window_loss = torch.zeros((), device=rt.device)
        window_start, window_images, window_steps = time.perf_counter(), 0, 0
        epoch_start, epoch_images = time.perf_counter(), 0
        batches = iter(loader)
        while True:
            batch = next(batches, None)
            # Streams of different lengths: the epoch ends for every rank when the first one runs dry.
            if (job.dist.any(batch is None, rt.device) if self.streaming else batch is None):
                break
            self._check_stop()
            batch = _to_device(batch, rt)
            with rt.autocast():
                outputs = self.model(batch["input"])
                loss = job.family.loss(outputs, batch)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            if self.ema is not None:
                self.ema.update(self.raw_model)
            n = batch["input"].shape[0]
            self.step += 1
            self.samples_in_epoch += n
            window_loss += loss.detach() * n
            window_images += n
            window_steps += 1
            epoch_images += n
            if window_steps == c.log_every_steps:
                self._flush_window(window_loss, window_images, window_start)
                window_loss, window_start, window_images, window_steps = torch.zeros((), device=rt.device), \
                    time.perf_counter(), 0, 0
            if c.checkpoint_steps and self.step % c.checkpoint_steps == 0:
                self._fold_window(window_loss, window_images)
                window_loss, window_images = torch.zeros((), device=rt.device), 0
                self.save_checkpoint()
        del batches  # closes a Pipe stream that other ranks' shorter streams cut short
        self._fold_window(window_loss, window_images)
        if rt.is_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - epoch_start
        return epoch_images * job.dist.world_size / max(elapsed, 1e-9)

    def _fold_window(self, window_loss: torch.Tensor, images: int) -> None:
        self.epoch_loss += torch.tensor([float(window_loss), images], dtype=torch.float64)

    def _flush_window(self, window_loss: torch.Tensor, images: int, start: float) -> None:
        loss_value = float(window_loss) / max(images, 1)  # one device sync per log line, not per step
        self._fold_window(window_loss, images)
        rate = images * self.job.dist.world_size / max(time.perf_counter() - start, 1e-9)
        remaining = max(self.total_steps - self.step, 0) * self.job.config.batch_size * self.job.dist.world_size / rate
        if self.job.dist.is_main:
            log.info(
                "step %d/%s epoch %d/%s loss %.4f lr %.2e images/s %.1f eta %s",
                self.step, self.total_steps or "?", self.epoch + 1, self.planned_epochs or "?", loss_value,
                self.scheduler.get_last_lr()[0], rate, time.strftime("%H:%M:%S", time.gmtime(remaining)),
            )

    def _eval_dataset(self, samples, split: str):
        """One dataset per split and sample list for the whole job, so decoded samples stay in memory."""
        job, c = self.job, self.job.config
        cached = self._eval_sets.get(split)
        if cached is not None and cached[0] is samples:
            return cached[1]
        if samples and isinstance(samples[0], Record):
            dataset = RecordDataset(job.family, list(samples), image_size=c.image_size, seed=c.seed)
        else:
            dataset = job.family.dataset(samples, image_size=c.image_size, augment=False, seed=c.seed)
            check_dataset_hooks(job.family.spec, dataset)
        self._eval_sets[split] = (samples, dataset)
        return dataset

    @torch.inference_mode()
    def evaluate(self, samples, split: str, panels: int = 0) -> tuple[dict[str, float], list]:
        job, c, rt = self.job, self.job.config, self.runtime
        dataset = self._eval_dataset(samples, split)
        channel = split if split == "test" or self.splits.validation_source == "channel" else "train"
        rank, world = self.scope.shard_of(channel)
        sampler = EpochSampler(len(samples), seed=c.seed, epoch=0, shuffle=False, rank=rank, world_size=world)
        loader = make_loader(dataset, sampler, c.batch_size, c, pin=rt.is_cuda, preload=self._preload(dataset))
        # The bare network, not the DDP wrapper: ranks may hold different numbers of evaluation batches
        # (host-local shards), and DDP's forward would broadcast BatchNorm buffers collectively.
        # The weight average, when there is one, is the model that gets validated and saved.
        model = self.ema.model if self.ema else self.raw_model if job.dist.enabled else self.model
        model.eval()
        metrics = job.family.metrics()
        reference = job.family.metrics()  # the family's constant answer, for context
        has_constant = job.family.spec.has("constant_prediction")
        loss_sum = torch.zeros(2, dtype=torch.float64)
        pictures = []
        for batch in loader:
            batch = _to_device(batch, rt)
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

    def fit(self) -> dict[str, Any]:
        job, c = self.job, self.job.config
        resumed = self.resume()
        if job.dist.is_main:
            log.info("%s; world size %d; train=%s validation=%d (%s) test=%d on this host; %s steps/epoch x %s "
                     "epochs; resumed=%s", self.runtime.describe(), job.dist.world_size,
                     "Pipe stream" if self.streaming else len(self.splits.train), len(self.splits.validation),
                     self.splits.validation_source, len(self.splits.test), self.steps_per_epoch or "?",
                     self.planned_epochs or f"(as many as fit in {c.max_minutes:g} min, at most {c.epochs})",
                     resumed)
        fit_start, fit_start_step = self.clock(), self.step
        while self.planned_epochs == 0 or self.epoch < self.planned_epochs:
            start_step, whole_epoch = self.step, self.samples_in_epoch == 0
            rate = self.train_epoch()
            if self.streaming:
                if not self.total_steps and whole_epoch:
                    self.steps_per_epoch = self.step - start_step  # equal on all ranks (see train_epoch)
                    self.total_steps = self.steps_per_epoch * self.planned_epochs
                    log.info("Pipe stream: %d steps per epoch; learning-rate schedule over %d steps",
                             self.steps_per_epoch, self.total_steps)
                if self.splits.validation_source.startswith("held out"):
                    self.splits = dataclasses.replace(self.splits, validation=self.train_data.held_out)
                if self.step == start_step and whole_epoch and not self.job.dist.enabled:
                    raise UserError("the Pipe-mode train stream held no training records",
                                    "check the channel's S3 prefix and the record format in the README")
            reduced = job.dist.all_reduce_sum(self.epoch_loss.to(self.runtime.device)).cpu()
            epoch_metrics = {"train:loss": float(reduced[0] / max(reduced[1], 1)), "train:images_per_second": rate}
            if self._anywhere(self.splits.validation):
                epoch_metrics.update(self.evaluate(self.splits.validation, "validation")[0])
            if job.dist.is_main:
                metrics_log.emit(self.epoch + 1, epoch_metrics)
            self.history.append({"epoch": self.epoch + 1, **epoch_metrics,
                                 "elapsed_seconds": round(self.clock() - fit_start, 3)})
            if self.planned_epochs == 0:
                # A job resumed inside its first epoch timed only part of it: scale to a whole epoch.
                share = (self.step - fit_start_step) / max(self.steps_per_epoch, 1)
                self._plan((self.clock() - fit_start) / max(share, 1e-3))
            self.epoch += 1
            self.samples_in_epoch = 0
            self.epoch_loss.zero_()
            self.save_checkpoint()
        return self.finish()

    def _plan(self, first_epoch_seconds: float) -> None:
        """Fix the epoch count from the first epoch's duration; every rank takes the slowest's decision."""
        c, dist = self.job.config, self.job.dist
        mine = schedule.planned_epochs(c, first_epoch_seconds)
        self.planned_epochs = -dist.all_reduce_max(-mine, self.runtime.device)
        self.total_steps = self.steps_per_epoch * self.planned_epochs
        if dist.is_main:
            log.info("time budget %.1f min: first epoch took %.1f s; training %d epochs (%d steps)",
                     c.max_minutes, first_epoch_seconds, self.planned_epochs, self.total_steps)

    def finish(self) -> dict[str, Any]:
        job, c = self.job, self.job.config
        final: dict[str, float] = {}
        panels: list = []
        if self._anywhere(self.splits.validation):
            final, panels = self.evaluate(self.splits.validation, "validation", panels=c.panels)
        if self._anywhere(self.splits.test):
            test_metrics, _ = self.evaluate(self.splits.test, "test")
            final.update(test_metrics)
            if job.dist.is_main:
                metrics_log.emit(self.planned_epochs, test_metrics)
        summary = {
            "epochs": self.planned_epochs,
            "steps": self.step,
            "world_size": job.dist.world_size,
            "validation_source": self.splits.validation_source,
            "final_metrics": final,
            "constant_baseline": self.baseline or {},
            "hyperparameters": dataclasses.asdict(c) | dataclasses.asdict(job.arch),
        }
        if job.dist.is_main:
            weights = self.ema.model if self.ema else self.raw_model
            write_outputs(job, weights, summary, self.history, panels)
            write_baseline(job, weights, self.splits)  # drift_baseline.json beside the weights (monitoring)
        job.dist.barrier()
        return summary


def run(job: TrainJob) -> dict[str, Any]:
    return Trainer(job).fit()
