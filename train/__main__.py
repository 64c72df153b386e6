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

from train.job import JobSpec, TrainPaths, build_job, stop_on
from train.loop import run
from train.outcome import outcome_of
from train.settings import settings_from_env


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
    paths = TrainPaths({k: Path(v) for k, v in args.channel}, args.model_dir, args.output_dir,
                       args.checkpoint_dir or args.output_dir / "checkpoints")
    try:
        with tempfile.TemporaryDirectory(prefix="byoc-train-") as scratch:
            spec = JobSpec(dict(args.hp), paths)
            parsed = spec.parse()
            job = build_job(spec.with_demo_data(Path(scratch), parsed[0]), settings_from_env(), parsed=parsed)
            stop_on(job, signal.SIGINT, signal.SIGTERM)
            run(job)
    except Exception as exc:
        outcome = outcome_of(exc)  # the same lines and exit codes as the container's failure file
        print(outcome.line, file=sys.stderr)
        return outcome.exit_code
    return 0

if __name__ == "__main__":
    sys.exit(main())
