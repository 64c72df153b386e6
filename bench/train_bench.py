"""Training throughput: our loop vs a bare loop vs the compute ceiling, same model, batch and precision.

    python -m bench.train_bench [--samples 96] [--size 64] [--batch 16] [--rounds 3] [--epochs 2]

- *bare*: a plain PyTorch loop over the project's dataset and loader (shows the loop adds nothing);
- *ceiling*: the same network, batch and precision stepping on tensors already in memory, in whichever
  layout (NCHW or channels_last) is faster here: what the machine can do at all for this recipe.

Prints images/s of each (median over interleaved rounds, first epoch of each run discarded as warm-up),
ours / bare and ours / ceiling. Runs unchanged on CPU-only machines; on a CUDA machine it uses the GPU
with the runtime's automatic precision (bf16 where supported) and also prints the share of our loop's wall
time the GPU was busy (``bench/gpu_busy.py``; give ``--ceiling-steps 50`` or more there, a GPU step is short).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from bench.gpu_busy import BusySampler, fmt_share
from model.normals.synthetic import write_dataset
from train.config import parse_hyperparameters
from train.data import EpochSampler, make_loader
from train.job import TrainJob, TrainPaths, training_runtime
from train.loop import Trainer


def hyperparameters(args) -> dict[str, str]:
    return {"epochs": str(args.epochs), "batch_size": str(args.batch), "image_size": str(args.size),
            "validation_fraction": "0", "checkpoint_steps": "0", "log_every_steps": "1000000", "panels": "0",
            "data_workers": str(args.workers), "base_channels": str(args.base_channels), "max_minutes": "0"}


def ours(args, data: Path, out: Path) -> tuple[float, float | None]:
    config, family, arch = parse_hyperparameters(hyperparameters(args))
    runtime = training_runtime(config)
    trainer = Trainer(TrainJob(config, family, arch, TrainPaths({"train": data}, out / "m", out / "d", out / "c"),
                               runtime))
    rates = [trainer.train_epoch()]  # warm-up
    trainer.progress.next_epoch()
    with BusySampler() as busy:
        for _ in range(args.epochs - 1):
            rates.append(trainer.train_epoch())
            trainer.progress.next_epoch()
    return statistics.median(rates[1:]), busy.share


def bare(args, data: Path) -> float:
    config, family, arch = parse_hyperparameters(hyperparameters(args))
    torch.manual_seed(0)
    model = family.build(arch)
    runtime = training_runtime(config)
    runtime = runtime.for_model(model, training=True)
    layout = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(runtime.device, memory_format=layout).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.needs_grad_scaler)
    dataset = family.dataset(family.index(data), image_size=config.image_size, augment=True, seed=0)
    rates = []
    for epoch in range(args.epochs):
        dataset.set_epoch(epoch)
        sampler = EpochSampler(len(dataset), seed=0, epoch=epoch, shuffle=True)
        loader = make_loader(dataset, sampler, config.batch_size, config, pin=runtime.is_cuda)
        start, images = time.perf_counter(), 0
        for batch in loader:
            batch = {k: v.to(runtime.device, non_blocking=True) for k, v in batch.items()}
            x = batch["input"].contiguous(memory_format=layout)
            with runtime.autocast():
                loss = family.loss(model(x), batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            images += x.shape[0]
        if runtime.is_cuda:
            torch.cuda.synchronize()
        rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates[1:])


def ceiling(args) -> dict[str, float]:
    """Images/s per layout stepping on in-memory tensors: nothing but the network (the max is the ceiling)."""
    config, family, arch = parse_hyperparameters(hyperparameters(args))
    runtime = training_runtime(config)
    rates = {}
    for name, layout in (("nchw", torch.contiguous_format), ("channels_last", torch.channels_last)):
        torch.manual_seed(0)
        model = family.build(arch).to(runtime.device, memory_format=layout).train()
        opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        scaler = torch.amp.GradScaler(runtime.device.type, enabled=runtime.needs_grad_scaler)
        shape = (args.batch, 3, args.size, args.size)
        batch = {"input": torch.randn(shape, device=runtime.device).contiguous(memory_format=layout),
                 "normals": torch.nn.functional.normalize(torch.randn(shape, device=runtime.device), dim=1),
                 "valid": torch.ones((args.batch, 1, args.size, args.size), dtype=torch.bool, device=runtime.device)}
        start, steps = 0.0, args.ceiling_steps
        for i in range(steps + 2):  # two warm-up steps
            if i == 2:
                if runtime.is_cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with runtime.autocast():
                loss = family.loss(model(batch["input"]), batch)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if runtime.is_cuda:
            torch.cuda.synchronize()
        rates[name] = steps * args.batch / (time.perf_counter() - start)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is warm-up")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=-1)
    parser.add_argument("--ceiling-steps", type=int, default=6, help="timed steps per layout (more on a GPU)")
    args = parser.parse_args()
    runtime = training_runtime(parse_hyperparameters(hyperparameters(args))[0])
    print(f"{runtime.describe()}; torch {torch.__version__}; threads {torch.get_num_threads()}")
    print(f"{args.samples} samples {args.size}px, batch {args.batch}, base_channels {args.base_channels}, "
          f"{args.epochs} epochs x {args.rounds} rounds (interleaved)")
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train"
        write_dataset(data, args.samples, args.size, seed=0)
        a, b, c, busy = [], [], [], []
        for r in range(args.rounds):
            b.append(bare(args, data))
            rate, share = ours(args, data, Path(tmp) / f"run{r}")
            a.append(rate)
            if share is not None:
                busy.append(share)
            rates = ceiling(args)
            c.append(max(rates.values()))
            layouts = ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
            print(f"round {r + 1}: bare {b[-1]:.1f} images/s, ours {a[-1]:.1f} images/s "
                  f"(GPU busy {fmt_share(share)}), ceiling {c[-1]:.1f} images/s ({layouts})", flush=True)
    ma, mb, mc = statistics.median(a), statistics.median(b), statistics.median(c)
    print(f"median: bare {mb:.1f} images/s, ours {ma:.1f} images/s, ceiling {mc:.1f} images/s; "
          f"ours/bare {ma / mb:.3f}, ours/ceiling {ma / mc:.3f}; "
          f"GPU busy in ours {fmt_share(statistics.median(busy) if busy else None)}")


if __name__ == "__main__":
    main()
