"""Start a SageMaker training job with our image, from a laptop (boto3 only, no torch).

    python -m container.aws.launch --image URI --role ARN --output-path s3://bucket/prefix \\
        --train s3://bucket/data/train --validation s3://bucket/data/val \\
        --hp epochs=20 --hp batch_size=32 --instance-type ml.g5.xlarge --spot --wait

Hyperparameters are checked here with the same parser the container uses (:mod:`train.config`) before
anything is created, so a typo fails in a second instead of after instance start-up. ``--wait`` follows the
job, streams its CloudWatch log lines and prints the model artifact URI last on stdout; ``--attach NAME``
does the same for a running job; ``--dry-run`` prints the CreateTrainingJob request without calling AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from container.aws.common import (
    LogFollower,
    ShipError,
    default_job_name,
    explain,
    make_session,
    parse_key_values,
    poll,
    run_cli,
)
from container.aws.hyperparameters import (
    family_spec,
    hyperparameter_string,
    metric_definitions,
    validate_hyperparameters,
)
from container.aws.training_job import CHANNELS, CHECKPOINT_LOCAL_PATH, MAX_RUNTIME_LIMIT_S, TrainingJob
from train.config import DEFAULT_FAMILY

__all__ = ["CHANNELS", "CHECKPOINT_LOCAL_PATH", "MAX_RUNTIME_LIMIT_S", "TrainingJob", "family_spec",
           "hyperparameter_string", "metric_definitions", "validate_hyperparameters"]


TRAINING_LOG_GROUP = "/aws/sagemaker/TrainingJobs"
TERMINAL = ("Completed", "Failed", "Stopped")



def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by container.aws.launch and container.aws.tune."""
    g = parser.add_argument_group("image, role, data")
    g.add_argument("--image", help="training image URI (the last line of ./build_and_push.sh)")
    g.add_argument("--role", help="SageMaker execution role ARN (default: $SAGEMAKER_ROLE_ARN)")
    g.add_argument("--output-path", help="s3://bucket/prefix for model.tar.gz and output.tar.gz")
    for channel in CHANNELS:
        g.add_argument(f"--{channel}", metavar="S3_URI", help=f"S3 prefix of the {channel} channel")
    g.add_argument("--input-mode", choices=("File", "FastFile"), default="File",
                   help="File copies the data to the instance first; FastFile streams it (default: File)")
    g.add_argument("--distribution", choices=("FullyReplicated", "ShardedByS3Key"), default="FullyReplicated",
                   help="how the train channel is split across instances (default: FullyReplicated)")
    g = parser.add_argument_group("hyperparameters")
    g.add_argument("--hp", action="append", metavar="NAME=VALUE", help="a hyperparameter (repeatable)")
    g.add_argument("--hyperparameters", metavar="FILE.json", help="a JSON object of hyperparameters (--hp wins)")
    g = parser.add_argument_group("compute")
    g.add_argument("--instance-type", default="ml.g5.xlarge", help="default: ml.g5.xlarge (one A10G GPU)")
    g.add_argument("--instance-count", type=int, default=1)
    g.add_argument("--volume-size", type=int, default=50, metavar="GB", help="EBS volume per instance (default: 50)")
    g.add_argument("--max-runtime", type=int, default=24 * 3600, metavar="SECONDS", help="default: 86400")
    g.add_argument("--spot", action="store_true", help="managed spot training (checkpoints go to --checkpoint-s3)")
    g.add_argument("--max-wait", type=int, metavar="SECONDS",
                   help="spot: max run + capacity wait, >= --max-runtime (default: 2 x --max-runtime)")
    g.add_argument("--checkpoint-s3", metavar="S3_URI",
                   help="where /opt/ml/checkpoints syncs to (spot default: OUTPUT_PATH/JOB/checkpoints); reuse "
                        "the same URI in a new job to resume")
    g.add_argument("--network-isolation", action="store_true", help="run the container without network access")
    g = parser.add_argument_group("other")
    g.add_argument("--env", action="append", metavar="KEY=VALUE", help="environment variable for the container")
    g.add_argument("--tag", action="append", metavar="KEY=VALUE", help="tag for the job (repeatable)")
    g.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)")
    g.add_argument("--poll-seconds", type=float, default=15, help=argparse.SUPPRESS)


def read_hyperparameters(args: argparse.Namespace) -> dict[str, str]:
    raw: dict[str, Any] = {}
    if args.hyperparameters:
        try:
            loaded = json.loads(Path(args.hyperparameters).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ShipError(f"cannot read --hyperparameters {args.hyperparameters} ({exc})",
                            "pass a JSON object file such as {\"epochs\": 20}", exit_code=2) from None
        if not isinstance(loaded, dict):
            raise ShipError(f"{args.hyperparameters} is not a JSON object", "write {\"name\": value, ...}",
                            exit_code=2)
        raw.update(loaded)
    raw.update(parse_key_values(args.hp, "--hp"))
    return validate_hyperparameters(raw)


def job_from_args(args: argparse.Namespace, name: str, hyperparameters: Mapping[str, str]) -> TrainingJob:
    missing = [flag for flag, value in (("--image", args.image), ("--output-path", args.output_path))
               if not value]
    role = args.role or os.environ.get("SAGEMAKER_ROLE_ARN")
    if not role:
        missing.append("--role (or $SAGEMAKER_ROLE_ARN)")
    if missing:
        raise ShipError(f"missing {', '.join(missing)}", "see --help; the README's AWS section has an example",
                        exit_code=2)
    return TrainingJob(
        name=name, image=args.image, role_arn=role, output_path=args.output_path,
        hyperparameters=hyperparameters,
        channels={c: getattr(args, c) for c in CHANNELS if getattr(args, c)},
        metric_definitions=metric_definitions(hyperparameters.get("model_family", DEFAULT_FAMILY)),
        instance_type=args.instance_type, instance_count=args.instance_count, volume_gb=args.volume_size,
        max_runtime_s=args.max_runtime, spot=args.spot, max_wait_s=args.max_wait, checkpoint_s3=args.checkpoint_s3,
        network_isolation=args.network_isolation, input_mode=args.input_mode,
        train_distribution=args.distribution,
        environment=parse_key_values(args.env, "--env"), tags=parse_key_values(args.tag, "--tag"),
    )


def follow_training_job(sm: Any, logs: Any, name: str, *, interval_s: float = 15, out: TextIO | None = None,
                        sleep: Callable[[float], None] = time.sleep) -> Mapping[str, Any]:
    """Poll the job until it ends, printing status changes and its log lines; return the last description.

    Progress goes to stderr by default, so stdout carries only the artifact URI.
    """
    out = out or sys.stderr
    follower = LogFollower(logs, TRAINING_LOG_GROUP, f"{name}/")
    last: list[Any] = [None]

    def on_poll(desc: Mapping[str, Any]) -> None:
        status = (desc.get("TrainingJobStatus"), desc.get("SecondaryStatus"))
        if status != last[0]:
            print(f"[{name}] {status[0]} / {status[1]}", file=out, flush=True)
            last[0] = status
        for stream, line in follower.new_lines():
            host = stream.rsplit("/", 1)[-1]
            print(f"[{host}] {line}", file=out, flush=True)

    try:
        return poll(lambda: sm.describe_training_job(TrainingJobName=name), "TrainingJobStatus", TERMINAL,
                    interval_s=interval_s, on_poll=on_poll, sleep=sleep)
    except ShipError:
        raise
    except Exception as exc:
        raise explain(exc, f"following training job {name}") from None


def report_outcome(desc: Mapping[str, Any], out: TextIO | None = None) -> int:
    """Print the artifact URI (last stdout line) or raise a ShipError carrying the job's FailureReason."""
    out = out or sys.stdout
    name, status = desc.get("TrainingJobName", "?"), desc.get("TrainingJobStatus")
    if status == "Completed":
        billable = desc.get("BillableTimeInSeconds")
        if billable is not None and desc.get("TrainingTimeInSeconds"):
            saved = 100 * (1 - billable / max(1, desc["TrainingTimeInSeconds"]))
            print(f"billable {billable} s of {desc['TrainingTimeInSeconds']} s (spot saving {saved:.0f}%)",
                  file=sys.stderr)
        print(desc["ModelArtifacts"]["S3ModelArtifacts"], file=out)
        return 0
    reason = desc.get("FailureReason") or "no reason given"
    if status == "Stopped":
        raise ShipError(f"training job {name} was stopped ({reason}; secondary status "
                        f"{desc.get('SecondaryStatus')})",
                        "if it hit MaxWaitTimeExceeded/MaxRuntimeExceeded raise --max-wait/--max-runtime; launch "
                        "again with the same --checkpoint-s3 to resume")
    raise ShipError(f"training job {name} failed: {reason}",
                    f"read the log lines above (CloudWatch {TRAINING_LOG_GROUP}/{name}/...), fix the cause and "
                    "launch again")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container.aws.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(parser)
    parser.add_argument("--job-name", help="default: byoc-normals-YYYYmmdd-HHMMSS")
    parser.add_argument("--wait", action="store_true", help="follow the job and stream its logs until it ends")
    parser.add_argument("--attach", metavar="JOB_NAME", help="follow an existing job instead of starting one")
    parser.add_argument("--dry-run", action="store_true", help="print the CreateTrainingJob request and stop")
    return parser


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if args.attach:
        session = session or make_session(args.region)
        desc = follow_training_job(session.client("sagemaker"), session.client("logs"), args.attach,
                                   interval_s=args.poll_seconds)
        return report_outcome(desc)

    job = job_from_args(args, args.job_name or default_job_name(), read_hyperparameters(args))
    request = job.request()
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    session = session or make_session(args.region)
    sm = session.client("sagemaker")
    try:
        arn = sm.create_training_job(**request)["TrainingJobArn"]
    except Exception as exc:
        raise explain(exc, f"creating training job {job.name}") from None
    region = session.region_name
    print(f"started {arn}\n  console: https://{region}.console.aws.amazon.com/sagemaker/home?region={region}"
          f"#/jobs/{job.name}", file=sys.stderr)
    if job.spot:
        print(f"  managed spot: max wait {job.effective_max_wait_s} s, checkpoints {job.effective_checkpoint_s3}",
              file=sys.stderr)
    if not args.wait:
        print(f"  follow it: python -m container.aws.launch --attach {job.name}\n  model artifact when done:",
              file=sys.stderr)
        print(job.model_artifact_uri)
        return 0
    desc = follow_training_job(sm, session.client("logs"), job.name, interval_s=args.poll_seconds)
    return report_outcome(desc)


if __name__ == "__main__":
    run_cli(main)
