"""What a recipe variation costs per training image here, relative to the default: the epochs it can train in the
default job's time budget, so that variations can be compared at equal CPU time (on a GPU, for instance).

    python -m bench.recipe_cost [NAME=KEY:VALUE,KEY:VALUE ...] [--rounds 3] [--steps 5]

Each variation is a set of hyperparameters over the defaults, e.g. ``crop80=crop_fraction:0.625`` or
``b12=base_channels:12``. Every variation steps the family's network on one batch of tensors already in memory
(the training window's size, the job's precision and layout, AdamW), in interleaved rounds; it prints the
median images/s and the cost per image relative to the default (epochs in a budget scale by its inverse).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from train.config import parse_hyperparameters
from train.job import training_runtime


def _variation(text: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = text.partition("=")
    hps = dict(pair.split(":", 1) for pair in pairs.split(",") if pair)
    return name, hps


def _stepper(hps: dict[str, str]):
    config, family, arch = parse_hyperparameters({"max_minutes": "0", **hps})
    runtime = training_runtime(config)
    torch.manual_seed(0)
    model = family.build(arch).to(runtime.device)
    runtime = runtime.for_model(model, training=True)
    layout = torch.channels_last if runtime.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout).train()
    opt = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    stride = 2 ** getattr(arch, "depth", 0)
    side = max(stride, round(config.image_size * config.crop_fraction / stride) * stride)
    # A training window carries its frame coordinates as two more channels (model/normals/augment.py).
    channels = 5 if config.crop_fraction < 1 else 3
    x = torch.randn(config.batch_size, channels, side, side, device=runtime.device).contiguous(memory_format=layout)
    target = torch.nn.functional.normalize(torch.randn(config.batch_size, 3, side, side, device=runtime.device), dim=1)
    batch = {"input": x, "normals": target,
             "valid": torch.ones(config.batch_size, 1, side, side, dtype=torch.bool, device=runtime.device)}

    def step() -> None:
        with runtime.autocast():
            loss = family.loss(model(batch["input"]), batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, config.batch_size, side


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variations", nargs="*", help="NAME=KEY:VALUE,KEY:VALUE over the defaults")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variation and round")
    args = parser.parse_args()
    variations = dict([("default", {}), *(_variation(v) for v in args.variations)])
    steppers = {name: _stepper(hps) for name, hps in variations.items()}
    rates: dict[str, list[float]] = {name: [] for name in variations}
    for _ in range(args.rounds):
        for name, (step, batch, _) in steppers.items():
            for _ in range(2):  # warm-up
                step()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps * batch / (time.perf_counter() - start))
    base = statistics.median(rates["default"])
    print(f"{'variation':12s} {'window':>6s} {'images/s':>9s} {'cost/image':>10s}  rounds")
    for name, (_, _, side) in steppers.items():
        rate = statistics.median(rates[name])
        print(f"{name:12s} {side:5d}px {rate:9.1f} {base / rate:10.2f}  {' '.join(f'{r:.1f}' for r in rates[name])}")


if __name__ == "__main__":
    main()
