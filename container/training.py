"""`train`: SageMaker's /opt/ml training contract around `train.loop`.

PID 1 (``python -m container train``) hands over to the sagemaker-training toolkit, which runs :func:`main`
in this same process (SAGEMAKER_TRAINING_MODULE), writes /opt/output/success, and turns the exception
:func:`report` raises into an exit code. main() reads the job from the /opt/ml tree itself
(container/jobtree.py, root from SAGEMAKER_BASE_DIR, read when main runs), builds it like every other entry
point (train/job.py) and maps how it ended with train/outcome.py. We run in
the toolkit's process rather than as its child script because the toolkit does not forward SIGTERM to
children (aws/sagemaker-training-toolkit issues 125, 173): in-process, our handler gets the signal and
checkpoints within SageMaker's 120 s grace.

Scale-out (several GPUs or hosts): main() starts torchrun as its child instead of training in-process, and
forwards SIGTERM to it; see container/distributed.py. Each process reports its :class:`Outcome` in a file
next to the job spec, and PID 1 adopts it.

Exit codes (train/outcome.py): 0 success; 1 a user error (bad hyperparameter/data: FailureReason starts
"UserError:") or an internal error ("InternalError:"); 143 stopped by SIGTERM after saving a checkpoint.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from container.jobtree import REQUIRED, JobTree
from train.errors import UserError
from train.outcome import INTERNAL, STOPPED, SUCCEEDED, USER, ExplainedFailure, Outcome, outcome_of, stopped
from train.settings import TrainSettings, base_dir, settings_from_env

log = logging.getLogger("container.training")


def launch(argv: list[str], environ: Mapping[str, str] | None = None) -> None:
    """PID 1 for ``train``: check the /opt/ml tree, then let the toolkit run :func:`main`."""
    tree = JobTree(base_dir(environ))
    tree.clear_outcome()
    if argv:
        _fail(tree, f"UserError: `train` takes no arguments, got {argv}. Fix: pass settings as hyperparameters "
                    "(/opt/ml/input/config/hyperparameters.json).")
    missing = tree.missing_config()
    if missing:
        examples = "; ".join(f"{name} like {REQUIRED[name]}" for name in missing)
        _fail(tree, f"UserError: {tree.config_dir} lacks {', '.join(missing)}; SageMaker writes these files, a "
                    f"local `docker run -v ...:/opt/ml` must provide them. Fix: create {examples}.")
    from container.malloc import tune_malloc

    tune_malloc(arenas=False)  # before any forward pass; exported to the processes the job starts
    os.environ["SAGEMAKER_TRAINING_MODULE"] = "container.training:main"
    from sagemaker_training import trainer  # imported late: its import reads /opt/ml

    trainer.train()  # exits the process with the job's exit code


def _fail(tree: JobTree, message: str) -> None:
    tree.write_failure(message)
    print(message, file=sys.stderr, flush=True)
    sys.exit(1)


class JobFailed(RuntimeError):
    """Hands a failed outcome to the toolkit, which exits with ``errno`` and logs the message."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.line)
        self.errno = outcome.exit_code


def report(tree: JobTree, outcome: Outcome) -> None:
    """Write the failure file and raise what makes the toolkit exit with the outcome's code."""
    if not outcome.failed:
        return
    tree.write_failure(outcome.line)
    if outcome.kind == USER:
        from sagemaker_training import errors

        raise errors.ClientError(outcome.line)  # the toolkit logs it without a traceback of ours
    raise JobFailed(outcome)


def run_distributed(layout, spec_file: Path) -> Outcome:
    """Train with torchrun on this host and adopt the outcome its processes reported."""
    from container import distributed
    from container.worker import read_outcomes

    try:
        code, signalled = distributed.run(layout, spec_file)
    except distributed.PeerError as exc:
        raise ExplainedFailure(f"on host {layout.current_host}: {exc}",
                               f"check that all {len(layout.hosts)} hosts started; raise BYOC_PEER_TIMEOUT_S if the "
                               "cluster is slow to come up.") from None
    if code == 0:
        return SUCCEEDED
    outcomes = read_outcomes(spec_file, layout.processes_per_host)
    if signalled and all(o is not None and not o.failed for o in outcomes):
        log.warning("SIGTERM arrived as training finished: every process on this host completed")
        return SUCCEEDED
    failed = [o for o in outcomes if o is not None and o.failed]
    confirmed = next((o for o in failed if o.kind == STOPPED), None)
    if signalled or confirmed:
        # Only a process that saved its checkpoint reports "stopped"; without one, claim nothing.
        return confirmed or stopped(
            f"SIGTERM on host {layout.current_host}, but the training processes exited (torchrun code {code}) "
            "before confirming a checkpoint; a job with the same checkpoint location resumes from the newest "
            "complete checkpoint, if there is one")
    # A user error is usually the cause, the other processes losing contact its effect.
    failed.sort(key=lambda o: o.kind != USER)
    return failed[0] if failed else Outcome(INTERNAL, distributed.describe_failure(layout, code))


def _train(tree: JobTree, settings: TrainSettings, resource: dict[str, Any]) -> Outcome:
    from container import distributed
    from train.job import build_job, stop_on
    from train.loop import run

    spec = tree.job_spec(resource)
    try:
        layout = distributed.plan(resource, pipe="train" in spec.paths.pipe, settings=settings)
    except ValueError as exc:
        raise UserError(str(exc), "fix the resource config") from None
    parsed = spec.parse()
    with tempfile.TemporaryDirectory(prefix="byoc-train-") as scratch:
        spec = spec.with_demo_data(Path(scratch), parsed[0])
        if layout.world_size > 1:
            return run_distributed(layout, spec.write(Path(scratch) / "job.json"))
        job = build_job(spec, settings, parsed=parsed)
        stop_on(job)
        run(job)
    return SUCCEEDED


def main() -> None:
    """Called by the toolkit inside PID 1 (SAGEMAKER_TRAINING_MODULE)."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tree = JobTree(base_dir())
    try:
        settings = settings_from_env()  # its base_dir is the base_dir() the tree above was built from
        resource = tree.resource_config()
        log.info("job %s on %s (hosts %s)", settings.job_name, resource.get("current_host"), resource.get("hosts"))
        outcome = _train(tree, settings, resource)
    except Exception as exc:
        outcome = outcome_of(exc)  # an internal one carries the traceback, which the toolkit logs
    report(tree, outcome)
