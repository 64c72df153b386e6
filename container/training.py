"""`train`: SageMaker's /opt/ml training contract around `train.loop`.

PID 1 (``python -m container train``) hands over to the sagemaker-training toolkit, which reads the
/opt/ml config into its Environment, runs :func:`main` in this same process (SAGEMAKER_TRAINING_MODULE),
writes /opt/output/success, and turns exceptions into /opt/ml/output/failure and an exit code. We run in
the toolkit's process rather than as its child script because the toolkit does not forward SIGTERM to
children (aws/sagemaker-training-toolkit issues 125, 173): in-process, our handler gets the signal and
checkpoints within SageMaker's 120 s grace.

Scale-out (several GPUs or hosts): main() starts torchrun as its child instead of training in-process, and
forwards SIGTERM to it; see container/distributed.py.

Exit codes: 0 success; 1 a user error (bad hyperparameter/data: FailureReason starts "UserError:") or an
internal error ("InternalError:"); 143 stopped by SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import traceback
from pathlib import Path

from train.errors import TrainingStopped, UserError

log = logging.getLogger("container.training")

BASE_DIR = Path(os.environ.get("SAGEMAKER_BASE_DIR", "/opt/ml"))
FAILURE_LIMIT = 1024  # SageMaker shows this many characters of the failure file as FailureReason
_EXAMPLES = {
    "hyperparameters.json": '{"epochs": "10"}',
    "inputdataconfig.json": '{"train": {"TrainingInputMode": "File"}}',
    "resourceconfig.json": '{"current_host": "algo-1", "hosts": ["algo-1"]}',
}


def launch(argv: list[str]) -> None:
    """PID 1 for ``train``: check the /opt/ml tree, then let the toolkit run :func:`main`."""
    clear_outcome()
    if argv:
        _fail(f"UserError: `train` takes no arguments, got {argv}. Fix: pass settings as hyperparameters "
              "(/opt/ml/input/config/hyperparameters.json).")
    config_dir = BASE_DIR / "input" / "config"
    missing = [name for name in _EXAMPLES if not (config_dir / name).is_file()]
    if missing:
        examples = "; ".join(f"{name} like {_EXAMPLES[name]}" for name in missing)
        _fail(f"UserError: {config_dir} lacks {', '.join(missing)}; SageMaker writes these files, a local "
              f"`docker run -v ...:/opt/ml` must provide them. Fix: create {examples}.")
    os.environ["SAGEMAKER_TRAINING_MODULE"] = "container.training:main"
    from sagemaker_training import trainer  # imported late: its import reads /opt/ml

    trainer.train()  # exits the process with the job's exit code


def clear_outcome() -> None:
    """Remove the previous run's success/failure files (a re-run in the same tree, e.g. the quick start).

    A stale failure file would win over the new reason (first writer wins, and the toolkit skips writing
    its own when one exists), and success and failure could coexist. Checkpoints and the model stay:
    they are how a re-run resumes.
    """
    for name in ("success", "failure"):
        path = BASE_DIR / "output" / name
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:  # e.g. a read-only output dir: the run reports its own problem later
            print(f"could not remove the previous run's {path}: {exc}", file=sys.stderr)


def _fail(message: str) -> None:
    write_failure(message)
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


def write_failure(message: str) -> None:
    """Write the failure file once, cut to what SageMaker shows; the toolkit writes its own only if ours is
    not there."""
    path = BASE_DIR / "output" / "failure"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_text(message[:FAILURE_LIMIT])
    except OSError as exc:  # a read-only or missing output dir must not hide the real error
        print(f"could not write {path}: {exc}", file=sys.stderr)


def _checkpoint_dir(config_dir: Path) -> Path:
    cfg = config_dir / "checkpointconfig.json"
    if cfg.is_file():
        local = json.loads(cfg.read_text()).get("LocalPath")
        if local:
            return Path(local)
    return BASE_DIR / "checkpoints"


def _channels(env) -> tuple[dict[str, Path], frozenset[str], frozenset[str]]:
    """(channel paths, Pipe-mode channels, ShardedByS3Key channels) from inputdataconfig.json.

    File and FastFile look the same to us (a directory); Pipe channels are FIFOs ``<path>_<n>``.
    """
    specs = env.input_data_config
    piped = frozenset(name for name, spec in specs.items() if spec.get("TrainingInputMode", "File") == "Pipe")
    sharded = frozenset(name for name, spec in specs.items() if spec.get("S3DistributionType") == "ShardedByS3Key")
    return {name: Path(path) for name, path in env.channel_input_dirs.items()}, piped, sharded


def _run_distributed(layout, env, paths, scratch: Path) -> None:
    """Train with torchrun on this host; raise like the in-process path so the toolkit reports alike."""
    from container import distributed

    spec = scratch / "job.json"
    spec.write_text(json.dumps({
        "hyperparameters": env.hyperparameters,
        "channels": {k: str(v) for k, v in paths.channels.items()},
        "model_dir": str(paths.model_dir),
        "output_data_dir": str(paths.output_data_dir),
        "checkpoint_dir": str(paths.checkpoint_dir),
        "sharded": sorted(paths.sharded),
        "pipe": sorted(paths.pipe),
        "current_host": layout.current_host,
        "hosts": list(layout.hosts),
    }))
    try:
        code, stopped = distributed.run(layout, spec)
    except distributed.PeerError as exc:
        raise PeerUnavailable(f"on host {layout.current_host}: {exc}") from None
    if code == 0:
        return
    from container.worker import finished_marker

    if stopped and all(finished_marker(spec, r).exists() for r in range(layout.processes_per_host)):
        log.warning("SIGTERM arrived as training finished: every process on this host completed")
        return
    failure = BASE_DIR / "output" / "failure"
    reason = failure.read_text() if failure.exists() else ""
    if stopped or reason.startswith("Stopped:"):
        # Only a worker that saved its checkpoint writes "Stopped: ..."; without it, claim nothing.
        raise TrainingStopped(reason.removeprefix("Stopped: ") or (
            f"SIGTERM on host {layout.current_host}, but the training processes exited (torchrun code {code}) "
            "before confirming a checkpoint; a job with the same checkpoint location resumes from the newest "
            "complete checkpoint, if there is one"))
    if not reason:
        reason = distributed.describe_failure(layout, code)
        write_failure(reason)
    raise WorkersFailed(reason.splitlines()[0] if reason else f"torchrun exit code {code}")


class PeerUnavailable(RuntimeError):
    """A peer host never resolved: the job fails with the host named (InternalError)."""


class WorkersFailed(RuntimeError):
    """torchrun failed; the failure file already holds the reason a worker (or the launcher) wrote."""


def main() -> None:
    """Called by the toolkit inside PID 1 (SAGEMAKER_TRAINING_MODULE)."""
    from sagemaker_training import environment, errors

    from container import distributed
    from model.family import DataFormatError
    from model.runtime import cuda_fallback_note, select_runtime
    from train.config import parse_hyperparameters
    from train.loop import TrainJob, TrainPaths, run
    from train.synthetic import with_synthetic_channels

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = environment.Environment()
    log.info("job %s on %s (hosts %s)", os.environ.get("TRAINING_JOB_NAME", "local"), env.current_host, env.hosts)
    try:
        config, family, arch = parse_hyperparameters(env.hyperparameters)
        channel_dirs, piped, sharded = _channels(env)
        try:
            layout = distributed.plan(env.resource_config, pipe="train" in piped)
        except ValueError as exc:
            raise UserError(str(exc), "fix the BYOC_* environment variable or the resource config") from None
        with tempfile.TemporaryDirectory(prefix="byoc-train-") as scratch:
            channels = with_synthetic_channels(channel_dirs, config, Path(scratch))
            paths = TrainPaths(
                channels=channels,
                model_dir=Path(env.model_dir),
                output_data_dir=Path(env.output_data_dir),
                checkpoint_dir=_checkpoint_dir(Path(env.input_config_dir)),
                sharded=sharded,
                pipe=piped,
            )
            if layout.world_size > 1:
                _run_distributed(layout, env, paths, Path(scratch))
                return
            if note := cuda_fallback_note():
                log.warning("%s", note)
            runtime = select_runtime(config.precision, channels_last=config.channels_last)
            job = TrainJob(config, family, arch, paths, runtime)
            signal.signal(signal.SIGTERM, lambda *_: (log.warning("SIGTERM: checkpointing and stopping"),
                                                       job.stop.set()))
            run(job)
    except (UserError, DataFormatError) as exc:  # a DataFormatError names a file that breaks the data format
        write_failure(f"UserError: {exc}")
        raise errors.ClientError(f"UserError: {exc}") from None
    except TrainingStopped as exc:
        write_failure(f"Stopped: {exc}")
        raise
    except WorkersFailed as exc:
        reason = (BASE_DIR / "output" / "failure")
        if reason.exists() and reason.read_text().startswith("UserError:"):
            raise errors.ClientError(str(exc)) from None
        raise
    except PeerUnavailable as exc:
        write_failure(f"InternalError: {exc}. Fix: check that all {len(env.hosts)} hosts started; raise "
                      "BYOC_PEER_TIMEOUT_S if the cluster is slow to come up.")
        raise
    except Exception as exc:
        head = f"InternalError: {type(exc).__name__}: {exc}"
        fix = (" Fix: this is likely a bug in the image or an environment problem (memory, disk, GPU); "
               "the full traceback is in the job's logs.\n")
        write_failure(head[:600] + fix + traceback.format_exc())
        raise
