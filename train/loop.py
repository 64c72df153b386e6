"""The training loop: resume, train epochs, validate, checkpoint, stop on request, then publish the model.

The parts it drives live beside it: the network and optimizer (train/assembly.py), the data strategy of the
input mode (train/feed.py), checkpoint state and resume (train/checkpoint.py), evaluation
(train/evaluate.py) and the outputs (train/outputs.py).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import torch
from torch import nn

from model.family import family_path
from train import metrics_log, schedule
from train.assembly import build_network, to_device, trainables, wrap_for_training
from train.checkpoint import CheckpointManager, Progress, TrainingCheckpoints
from train.data import Splits
from train.errors import TrainingStopped
from train.evaluate import Evaluator
from train.feed import make_feed
from train.job import TrainJob
from train.outputs import publish
from train.scope import DataScope

log = logging.getLogger(__name__)


class LossWindow:
    """Training loss and images since the last log line, kept on the device (one sync per log line)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.loss, self.images = torch.zeros((), device=device), 0
        self.start, self.steps = time.perf_counter(), 0

    def restart(self) -> None:
        self.take()
        self.start, self.steps = time.perf_counter(), 0

    def take(self) -> tuple[torch.Tensor, int]:
        """The loss sum and image count so far, and start counting them again (the clock keeps running)."""
        taken = self.loss, self.images
        self.loss, self.images = torch.zeros((), device=self.device), 0
        return taken

    def add(self, loss: torch.Tensor, n: int) -> None:
        self.loss += loss.detach() * n
        self.images += n
        self.steps += 1


class Trainer:
    def __init__(self, job: TrainJob) -> None:
        self.job, c = job, job.config
        self.scope = DataScope(job.family, job.paths, c, job.dist, job.settings.pipe_timeout_s)
        splits = self.scope.load_splits()
        self.raw_model, self.runtime, optimizer = build_network(job)
        self.feed = make_feed(job, self.scope, splits, self.runtime.device)
        # Under a time budget the epoch count is decided after the fourth epoch (train/schedule.py).
        self.progress = Progress(steps_per_epoch=self.feed.steps_per_epoch,
                                 planned_epochs=0 if schedule.uses_budget(c) else c.epochs)
        self.parts = trainables(job, self.raw_model, self.runtime, optimizer, self.progress)
        identity = {"family": family_path(job.family), "arch": dataclasses.asdict(job.arch)}
        self.checkpoints = TrainingCheckpoints(CheckpointManager(job.paths.checkpoint_dir, c.keep_checkpoints),
                                               identity, job.dist, c.batch_size)
        self.model = wrap_for_training(job, self.raw_model, self.runtime)
        self.evaluator = Evaluator(job, self.scope, self.runtime)
        self.clock = time.perf_counter  # replaceable in tests
        self._pace: schedule.Pace | None = None  # set by fit()

    @property
    def splits(self) -> Splits:
        return self.feed.splits

    def _anywhere(self, samples) -> bool:
        """Whether any rank has samples (hosts with shards may differ; all must take the same branch)."""
        return self.job.dist.any(bool(samples), self.runtime.device)

    def save_checkpoint(self) -> None:
        if self._pace is not None:
            self.progress.budget_seconds = self._pace.spent(self.clock())
        self.checkpoints.save(self.parts, self.progress)

    def _check_stop(self) -> None:
        if self.job.dist.any(self.job.stop.is_set(), self.runtime.device):
            self.save_checkpoint()
            raise TrainingStopped(
                f"training stopped by SIGTERM at step {self.progress.step} (epoch {self.progress.epoch + 1}); a "
                f"checkpoint was saved in {self.job.paths.checkpoint_dir} and a job with the same checkpoint "
                "location resumes from it"
            )

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        """One optimizer step on one batch: (loss, images)."""
        parts, rt = self.parts, self.runtime
        batch = to_device(batch, rt)
        with rt.autocast():
            outputs = self.model(batch["input"])
            loss = self.job.family.loss(outputs, batch)
        parts.optimizer.zero_grad(set_to_none=True)
        parts.scaler.scale(loss).backward()
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
        parts.scheduler.step()
        if parts.ema is not None:
            parts.ema.update(self.raw_model)
        n = batch["input"].shape[0]
        self.progress.step += 1
        self.progress.samples_in_epoch += n
        return loss, n

    def train_epoch(self) -> float:
        """One epoch (or its rest, after a resume); returns the images per second of all ranks together."""
        c, rt, p = self.job.config, self.runtime, self.progress
        loader = self.feed.loader(p.epoch, skip=p.samples_in_epoch)
        self.model.train()
        window = LossWindow(rt.device)
        epoch_start, epoch_images = time.perf_counter(), 0
        batches = iter(loader)
        while True:
            batch = next(batches, None)
            if self.feed.epoch_over(batch):
                break
            self._check_stop()
            loss, n = self._step(batch)
            window.add(loss, n)
            epoch_images += n
            if window.steps == c.log_every_steps:
                self._log_window(window)
                window.restart()
            if c.checkpoint_steps and p.step % c.checkpoint_steps == 0:
                self._fold(*window.take())
                self.save_checkpoint()
        del batches  # closes a Pipe stream that other ranks' shorter streams cut short
        self._fold(*window.take())
        if rt.is_cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - epoch_start
        return epoch_images * self.job.dist.world_size / max(elapsed, 1e-9)

    def _fold(self, window_loss: torch.Tensor, images: int) -> None:
        self.progress.epoch_loss += torch.tensor([float(window_loss), images], dtype=torch.float64)

    def _log_window(self, window: LossWindow) -> None:
        start, (window_loss, images) = window.start, window.take()
        loss_value = float(window_loss) / max(images, 1)  # one device sync per log line, not per step
        self._fold(window_loss, images)
        p, world = self.progress, self.job.dist.world_size
        rate = images * world / max(time.perf_counter() - start, 1e-9)
        remaining = max(p.total_steps - p.step, 0) * self.job.config.batch_size * world / rate
        if self.job.dist.is_main:
            log.info(
                "step %d/%s epoch %d/%s loss %.4f lr %.2e images/s %.1f eta %s",
                p.step, p.total_steps or "?", p.epoch + 1, p.planned_epochs or "?", loss_value,
                self.parts.scheduler.get_last_lr()[0], rate, time.strftime("%H:%M:%S", time.gmtime(remaining)),
            )

    @property
    def weights(self) -> nn.Module:
        """The weights that get validated and saved: the weight average when there is one."""
        return self.parts.ema.model if self.parts.ema else self.raw_model

    def _eval_model(self) -> nn.Module:
        # Not the DDP wrapper: ranks may hold different numbers of evaluation batches.
        return self.weights if self.parts.ema or self.job.dist.enabled else self.model

    def evaluate(self, samples, split: str, panels: int = 0, final: bool = False) -> tuple[dict[str, float], list]:
        return self.evaluator.evaluate(self._eval_model(), samples, split, self.splits.validation_source, panels,
                                       final)

    def _announce(self, resumed: bool) -> None:
        job, c, p, splits = self.job, self.job.config, self.progress, self.splits
        if job.dist.is_main:
            log.info("%s; world size %d; train=%s validation=%d (%s) test=%d on this host; %s steps/epoch x %s "
                     "epochs; resumed=%s", self.runtime.describe(), job.dist.world_size, self.feed.describe(),
                     len(splits.validation), splits.validation_source, len(splits.test), p.steps_per_epoch or "?",
                     p.planned_epochs or f"(as many as fit in {c.max_minutes:g} min, at most {c.epochs})", resumed)

    def _end_epoch(self, rate: float, pace: schedule.Pace) -> None:
        job, p = self.job, self.progress
        reduced = job.dist.all_reduce_sum(p.epoch_loss.to(self.runtime.device)).cpu()
        epoch_metrics = {"train:loss": float(reduced[0] / max(reduced[1], 1)), "train:images_per_second": rate}
        if self._anywhere(self.splits.validation):
            epoch_metrics.update(self.evaluate(self.splits.validation, "validation")[0])
        if job.dist.is_main:
            metrics_log.emit(p.epoch + 1, epoch_metrics)
        p.history.append({"epoch": p.epoch + 1, **epoch_metrics, "elapsed_seconds": round(pace.spent(self.clock()), 3)})
        if p.planned_epochs == 0:
            self._maybe_plan(pace)
        elif p.epoch + 1 < p.planned_epochs and self._out_of_budget(pace):
            p.stopped_at_epoch = p.epoch + 1  # kept in the checkpoint: a resumed job ends here too
        p.next_epoch()
        self.save_checkpoint()

    def fit(self) -> dict[str, Any]:
        p = self.progress
        self._announce(self.checkpoints.resume(self.parts, p, self.feed.learns_epoch_length))
        self._pace = pace = schedule.Pace(self.clock(), spent_before=p.budget_seconds)
        while p.planned_epochs == 0 or p.epoch < p.last_epoch:
            start_step, whole_epoch = p.step, p.samples_in_epoch == 0
            pace.start_epoch(self.clock(), start_step)
            rate = self.train_epoch()
            self.feed.after_epoch(p, start_step, whole_epoch)
            self._end_epoch(rate, pace)
        return self.finish()

    def _maybe_plan(self, pace: schedule.Pace) -> None:
        """Fix the epoch count once, when schedule.plan_now says so, from the slowest rank's plan."""
        c, p, dist = self.job.config, self.progress, self.job.dist
        if not p.steps_per_epoch:  # a Pipe stream resumed inside its first pass: the epoch length comes next
            return
        now, done = self.clock(), p.epoch + 1
        epoch_seconds = pace.epoch_seconds(now, p.step, p.steps_per_epoch)
        spent = pace.spent(now)
        # Every rank takes the same slowest plan and so the same branch below.
        slowest = -dist.all_reduce_max(-schedule.planned_epochs(c, done, spent, epoch_seconds), self.runtime.device)
        if not schedule.plan_now(c, done, slowest, pace.warm):
            return
        p.planned_epochs, p.plan_step = slowest, p.step
        if dist.is_main:
            log.info("time budget %g min: %d epoch(s) took %.1f s, planned at %.1f s an epoch; training %d epochs "
                     "(%d steps)", c.max_minutes, done, spent, epoch_seconds, p.planned_epochs, p.total_steps)

    def _out_of_budget(self, pace: schedule.Pace) -> bool:
        """The machine slowed down after the plan: end after this epoch rather than overrun (any rank's clock
        decides). Only from warm epochs: a resumed process's first one may be a scaled-up rest."""
        c, p = self.job.config, self.progress
        if not schedule.uses_budget(c) or not pace.warm:
            return False
        now, spe = self.clock(), p.steps_per_epoch
        # The next epoch may be as slow as the last one: the mean would lag a slowdown.
        next_epoch = max(pace.epoch_seconds(now, p.step, spe), pace.last_epoch_seconds(now, p.step, spe))
        over = schedule.out_of_budget(c, pace.spent(now), next_epoch)
        if not self.job.dist.any(over, self.runtime.device):
            return False
        if self.job.dist.is_main:
            log.warning("time budget %g min: the epochs ran slower than planned; ending after epoch %d of %d",
                        c.max_minutes, p.epoch + 1, p.planned_epochs)
        return True

    def finish(self) -> dict[str, Any]:
        job, c = self.job, self.job.config
        final: dict[str, float] = {}
        panels: list = []
        if self._anywhere(self.splits.validation):
            final, panels = self.evaluate(self.splits.validation, "validation", panels=c.panels, final=True)
        if self._anywhere(self.splits.test):
            test_metrics, _ = self.evaluate(self.splits.test, "test", final=True)
            final.update(test_metrics)
            if job.dist.is_main:
                metrics_log.emit(self.progress.epoch, test_metrics)
        summary = {
            "epochs": self.progress.epoch,
            "planned_epochs": self.progress.planned_epochs,
            "steps": self.progress.step,
            "world_size": job.dist.world_size,
            "validation_source": self.splits.validation_source,
            "final_metrics": final,
            "constant_baseline": self.evaluator.baseline or {},
            "hyperparameters": dataclasses.asdict(c) | dataclasses.asdict(job.arch),
        }
        if job.dist.is_main:
            publish(job, self.weights, self.runtime, summary, self.progress.history, panels, self.splits)
        job.dist.barrier()
        return summary


def run(job: TrainJob) -> dict[str, Any]:
    return Trainer(job).fit()
