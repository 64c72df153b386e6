"""Train on a laptop or any machine, without SageMaker:

    python -m train --channel train=data/train --channel validation=data/val \\
        --model-dir out/model --output-dir out/data --hp epochs=5 --hp base_channels=16

Same loop, config and outputs as the container's `train`; SIGINT/SIGTERM checkpoint and stop.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
from pathlib import Path

from model.runtime import select_runtime
from train.config import parse_hyperparameters
from train.errors import TrainingStopped, UserError
from train.loop import TrainJob, TrainPaths, run
from train.synthetic import with_synthetic_channels


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channel", type=_pair, action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--hp", type=_pair, action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--checkpoint-dir", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, family, arch = parse_hyperparameters(dict(args.hp))
        with tempfile.TemporaryDirectory(prefix="byoc-train-") as scratch:
            channels = with_synthetic_channels({k: Path(v) for k, v in args.channel}, config, Path(scratch))
            paths = TrainPaths(channels, args.model_dir, args.output_dir,
                               args.checkpoint_dir or args.output_dir / "checkpoints")
            job = TrainJob(config, family, arch, paths, select_runtime(config.precision,
                                                                       channels_last=config.channels_last))
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: job.stop.set())
            run(job)
    except (UserError, TrainingStopped) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 143 if isinstance(exc, TrainingStopped) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
