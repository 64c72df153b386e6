"""Hyperparameter tuning job over our training image (boto3 only, no torch).

    python -m container.aws.tune --image URI --role ARN --output-path s3://bucket/hpo \\
        --train s3://bucket/data/train --validation s3://bucket/data/val \\
        --range learning_rate=1e-4:1e-2:log --range batch_size=8:32 --range lr_schedule=cosine,constant \\
        --max-jobs 20 --max-parallel 2 --spot --wait

Objective: the family's spec objective by default (``validation:mean_angular_error``, minimize, for the
built-in family), one of the job's metric definitions (computed from the same spec).
Ranges: ``NAME=MIN:MAX[:auto|linear|log|reverse]`` (integer or continuous, from the hyperparameter's type)
or ``NAME=A,B,C`` (categorical). Both ends of every range are checked with the container's own parser first.
Without ``--range`` it searches learning_rate, batch_size and weight_decay. ``--wait`` prints the best job
and its model artifact; ``--best NAME`` prints them for an existing tuning job.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from container.aws.common import (
    ShipError,
    default_job_name,
    explain,
    make_session,
    parse_key_values,
    poll,
    run_cli,
    tag_list,
)
from container.aws.launch import (
    TrainingJob,
    add_job_arguments,
    family_spec,
    job_from_args,
    read_hyperparameters,
    validate_hyperparameters,
)
from container.aws.validate import check_name
from train.config import DEFAULT_FAMILY, TrainConfig
from train.errors import UserError

DEFAULT_RANGES = ("learning_rate=1e-4:1e-2:log", "batch_size=8:32", "weight_decay=1e-6:1e-2:log")
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
_SCALING = {"auto": "Auto", "linear": "Linear", "log": "Logarithmic", "reverse": "ReverseLogarithmic"}


@dataclass(frozen=True)
class ParameterRange:
    name: str
    kind: str  # "Integer" | "Continuous" | "Categorical"
    values: tuple[str, ...]  # (min, max) or the categories
    scaling: str = "Auto"

    def api(self) -> dict[str, Any]:
        if self.kind == "Categorical":
            return {"Name": self.name, "Values": list(self.values)}
        return {"Name": self.name, "MinValue": self.values[0], "MaxValue": self.values[1], "ScalingType": self.scaling}


def _field_types(family: str) -> dict[str, str]:
    types = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    spec = family_spec(family)
    if spec is not None:
        types.update({f.name: str(f.type) for f in dataclasses.fields(spec.config_type)})
    return types


def parse_range(spec: str, static: Mapping[str, str]) -> ParameterRange:
    """``NAME=MIN:MAX[:scaling]`` or ``NAME=A,B`` -> a range whose ends pass the container's validation."""
    name, sep, body = spec.partition("=")
    if not sep or not body:
        raise ShipError(f"--range {spec!r} is not NAME=MIN:MAX[:scaling] or NAME=A,B,C",
                        "e.g. --range learning_rate=1e-4:1e-2:log or --range lr_schedule=cosine,constant",
                        exit_code=2)
    types = _field_types(static.get("model_family") or DEFAULT_FAMILY)
    if name not in types:
        raise ShipError(f"--range names {name!r}, which is not a hyperparameter",
                        f"use one of: {', '.join(sorted(types))}", exit_code=2)
    if name in static:
        raise ShipError(f"{name} is given both as a fixed hyperparameter and as a --range",
                        f"drop --hp {name}=... or the --range", exit_code=2)
    kind_of_field = types[name]
    if "," in body or kind_of_field in ("str", "bool"):
        values = tuple(v.strip() for v in body.split(","))
        rng = ParameterRange(name, "Categorical", values)
    else:
        parts = body.split(":")
        if len(parts) not in (2, 3):
            raise ShipError(f"--range {spec!r} needs MIN:MAX or MIN:MAX:SCALING", "e.g. batch_size=8:32",
                            exit_code=2)
        scaling = _SCALING.get(parts[2].lower()) if len(parts) == 3 else "Auto"
        if scaling is None:
            raise ShipError(f"unknown scaling {parts[2]!r} in --range {spec}",
                            f"use one of {', '.join(_SCALING)}", exit_code=2)
        kind = "Integer" if kind_of_field == "int" else "Continuous"
        rng = ParameterRange(name, kind, (parts[0].strip(), parts[1].strip()), scaling)
        try:
            low, high = float(rng.values[0]), float(rng.values[1])
        except ValueError:
            raise ShipError(f"--range {spec}: {rng.values} are not numbers", "give numeric bounds",
                            exit_code=2) from None
        if low >= high:
            raise ShipError(f"--range {spec}: MIN must be below MAX", "swap or widen the bounds", exit_code=2)
        if scaling in ("Logarithmic", "ReverseLogarithmic") and low <= 0:
            raise ShipError(f"--range {spec}: logarithmic scaling needs MIN > 0", "raise MIN or use linear",
                            exit_code=2)
    for value in rng.values:
        try:
            validate_hyperparameters({**static, name: value})
        except UserError as exc:
            raise ShipError(f"--range {spec}: the value {value!r} would fail in the job: {exc.what}", exc.fix,
                            exit_code=2) from None
    return rng


@dataclass(frozen=True)
class TuningJob:
    name: str
    training: TrainingJob
    ranges: Sequence[ParameterRange]
    objective: str
    objective_type: str = "Minimize"
    strategy: str = "Bayesian"
    max_jobs: int = 20
    max_parallel: int = 2
    early_stopping: str = "Off"
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name(self.name, "tuning job name", max_length=32)
        names = [d["Name"] for d in self.training.metric_definitions]
        if self.objective not in names:
            raise ShipError(f"objective {self.objective!r} is not one of the metric definitions",
                            f"use one of: {', '.join(names)}", exit_code=2)
        if not 1 <= self.max_parallel <= self.max_jobs:
            raise ShipError("--max-parallel must be between 1 and --max-jobs", "lower --max-parallel", exit_code=2)
        if not self.ranges:
            raise ShipError("nothing to tune", "pass at least one --range", exit_code=2)

    def request(self) -> dict[str, Any]:
        """Keyword arguments of sagemaker.create_hyper_parameter_tuning_job."""
        grouped: dict[str, list[dict[str, Any]]] = {
            "IntegerParameterRanges": [], "ContinuousParameterRanges": [], "CategoricalParameterRanges": []}
        for r in self.ranges:
            grouped[f"{r.kind}ParameterRanges"].append(r.api())
        definition = {"StaticHyperParameters": dict(self.training.hyperparameters), **self.training.definition()}
        if self.training.environment:
            definition["Environment"] = dict(self.training.environment)
        req: dict[str, Any] = {
            "HyperParameterTuningJobName": self.name,
            "HyperParameterTuningJobConfig": {
                "Strategy": self.strategy,
                "HyperParameterTuningJobObjective": {"Type": self.objective_type, "MetricName": self.objective},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": self.max_jobs,
                                   "MaxParallelTrainingJobs": self.max_parallel},
                "ParameterRanges": grouped,
                "TrainingJobEarlyStoppingType": self.early_stopping,
            },
            "TrainingJobDefinition": definition,
        }
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req


def best_job(sm: Any, name: str) -> dict[str, Any]:
    """The best training job of tuning job ``name``: its name, objective value, hyperparameters, artifact."""
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    best = desc.get("BestTrainingJob")
    if not best:
        raise ShipError(f"tuning job {name} has no best training job yet (status "
                        f"{desc.get('HyperParameterTuningJobStatus')})",
                        "wait until at least one training job completes and reports the objective metric")
    job = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    metric = best.get("FinalHyperParameterTuningJobObjectiveMetric", {})
    return {
        "tuning_job": name,
        "status": desc.get("HyperParameterTuningJobStatus"),
        "best_training_job": best["TrainingJobName"],
        "objective": metric.get("MetricName"),
        "objective_value": metric.get("Value"),
        "tuned_hyperparameters": best.get("TunedHyperParameters", {}),
        "model_artifact": job.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
    }


def default_objective(family: str, objective: str | None, objective_type: str | None) -> tuple[str, str]:
    """(objective metric, Minimize|Maximize): the flags when given, else what the family's spec declares."""
    spec = family_spec(family)
    if objective is None:
        if spec is None:
            raise ShipError(f"the spec of {family} is not importable here, so its tuning objective is unknown",
                            "pass --objective validation:NAME (and --objective-type), or run from the directory "
                            "holding your package", exit_code=2)
        objective = spec.objective_metric
    if objective_type is None:
        metric = objective.split(":", 1)[-1]
        objective_type = "Maximize" if spec is not None and metric in spec.higher_is_better else "Minimize"
    return objective, objective_type


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container.aws.tune", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_job_arguments(parser)
    g = parser.add_argument_group("tuning")
    g.add_argument("--range", action="append", metavar="SPEC", help="NAME=MIN:MAX[:log] or NAME=A,B (repeatable)")
    g.add_argument("--objective", help="metric to optimise (default: the family's spec objective, "
                                       "validation:mean_angular_error for the built-in one)")
    g.add_argument("--objective-type", choices=("Minimize", "Maximize"),
                   help="default: from the spec (Maximize for its higher-is-better metrics, else Minimize)")
    g.add_argument("--strategy", choices=STRATEGIES, default="Bayesian")
    g.add_argument("--max-jobs", type=int, default=20, help="training jobs in total (default: 20)")
    g.add_argument("--max-parallel", type=int, default=2, help="training jobs at a time (default: 2)")
    g.add_argument("--early-stopping", choices=("Off", "Auto"), default="Off")
    g.add_argument("--tuning-job-name", help="default: byoc-hpo-YYmmdd-HHMMSS (at most 32 characters)")
    g.add_argument("--wait", action="store_true", help="wait for the end and print the best job")
    g.add_argument("--best", metavar="TUNING_JOB", help="only print the best job of an existing tuning job")
    g.add_argument("--dry-run", action="store_true", help="print the request and stop")
    return parser


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if args.best:
        session = session or make_session(args.region)
        print(json.dumps(best_job(session.client("sagemaker"), args.best), indent=2))
        return 0
    static = read_hyperparameters(args)
    name = args.tuning_job_name or default_job_name("byoc-hpo", stamp="%y%m%d-%H%M%S")  # at most 32 characters
    # The tuning job names its training jobs; a derived checkpoint path would be shared by all of them
    # (parallel jobs resuming each other's checkpoints), so only an explicit --checkpoint-s3 is passed on.
    training = dataclasses.replace(job_from_args(args, name, static), auto_checkpoint=False)
    if training.spot and not training.checkpoint_s3:
        print("note: spot tuning without --checkpoint-s3: an interrupted trial restarts from scratch",
              file=sys.stderr)
    objective, objective_type = default_objective(static.get("model_family", DEFAULT_FAMILY), args.objective,
                                                  args.objective_type)
    tuning = TuningJob(
        name=name, training=training,
        ranges=[parse_range(spec, static) for spec in (args.range or DEFAULT_RANGES)],
        objective=objective, objective_type=objective_type, strategy=args.strategy,
        max_jobs=args.max_jobs, max_parallel=args.max_parallel, early_stopping=args.early_stopping,
        tags=parse_key_values(args.tag, "--tag"),
    )
    request = tuning.request()
    if args.dry_run:
        print(json.dumps(request, indent=2))
        return 0
    session = session or make_session(args.region)
    sm = session.client("sagemaker")
    try:
        arn = sm.create_hyper_parameter_tuning_job(**request)["HyperParameterTuningJobArn"]
    except Exception as exc:
        raise explain(exc, f"creating tuning job {name}") from None
    print(f"started {arn}", file=sys.stderr)
    if not args.wait:
        print(f"  best job so far: python -m container.aws.tune --best {name}", file=sys.stderr)
        print(name)
        return 0

    def on_poll(desc: Mapping[str, Any]) -> None:
        counts = desc.get("TrainingJobStatusCounters", {})
        print(f"[{name}] {desc.get('HyperParameterTuningJobStatus')} "
              f"{', '.join(f'{k}={v}' for k, v in counts.items())}", file=sys.stderr, flush=True)

    desc = poll(lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
                "HyperParameterTuningJobStatus", ("Completed", "Failed", "Stopped"),
                interval_s=args.poll_seconds, on_poll=on_poll)
    if desc["HyperParameterTuningJobStatus"] == "Failed":
        raise ShipError(f"tuning job {name} failed: {desc.get('FailureReason') or 'no reason given'}",
                        "look at its training jobs in the console (their FailureReason and logs)")
    print(json.dumps(best_job(sm, name), indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
