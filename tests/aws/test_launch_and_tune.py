"""The launch and tune CLIs against moto: the exact CreateTrainingJob / CreateHyperParameterTuningJob requests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from container.aws import launch, tune
from container.aws.common import ShipError
from train.errors import UserError

pytestmark = pytest.mark.aws
REPO = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-byoc-normals:abc1234"
BASE = ["--image", IMAGE, "--role", ROLE, "--output-path", "s3://bucket/runs", "--poll-seconds", "0"]
DATA = ["--train", "s3://bucket/data/train", "--validation", "s3://bucket/data/val", "--test", "s3://bucket/data/test"]


def test_launch_sends_channels_spot_checkpoints_metrics_isolation_and_tags(aws, capsys) -> None:
    code = launch.main([*BASE, *DATA, "--job-name", "normals-1", "--hp", "epochs=3", "--hp", "batch_size=8",
                        "--hp", "augment=False", "--instance-type", "ml.g5.2xlarge", "--instance-count", "2",
                        "--volume-size", "80", "--max-runtime", "7200", "--spot", "--max-wait", "10800",
                        "--network-isolation", "--tag", "team=vision", "--env", "NCCL_DEBUG=WARN", "--wait"],
                       session=aws.session())

    assert code == 0
    req = aws.recorder.only("CreateTrainingJob")
    assert req["TrainingJobName"] == "normals-1"
    # Strings only, as SageMaker requires; the boolean spelled the way the container parses it.
    assert req["HyperParameters"] == {"epochs": "3", "batch_size": "8", "augment": "False"}
    assert req["AlgorithmSpecification"] == {
        "TrainingImage": IMAGE, "TrainingInputMode": "File",
        "MetricDefinitions": json.loads((REPO / "train/metric_definitions.json").read_text())}
    assert req["RoleArn"] == ROLE
    assert [(c["ChannelName"], c["DataSource"]["S3DataSource"]["S3Uri"],
             c["DataSource"]["S3DataSource"]["S3DataDistributionType"]) for c in req["InputDataConfig"]] == [
        ("train", "s3://bucket/data/train", "FullyReplicated"),
        ("validation", "s3://bucket/data/val", "FullyReplicated"),
        ("test", "s3://bucket/data/test", "FullyReplicated")]
    assert req["OutputDataConfig"] == {"S3OutputPath": "s3://bucket/runs"}
    assert req["ResourceConfig"] == {"InstanceType": "ml.g5.2xlarge", "InstanceCount": 2, "VolumeSizeInGB": 80}
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 10800}
    assert req["EnableManagedSpotTraining"] is True
    assert req["CheckpointConfig"] == {"S3Uri": "s3://bucket/runs/normals-1/checkpoints",
                                       "LocalPath": "/opt/ml/checkpoints"}
    assert req["EnableNetworkIsolation"] is True
    assert req["Environment"] == {"NCCL_DEBUG": "WARN"}
    assert req["Tags"] == [{"Key": "team", "Value": "vision"}]
    # --wait: moto completes the job at once; the artifact URI is the last stdout line.
    assert "DescribeTrainingJob" in aws.recorder.ops()
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith("model.tar.gz")


def test_launch_without_spot_has_no_wait_time_or_checkpoints(aws, capsys) -> None:
    assert launch.main([*BASE, "--train", "s3://bucket/t", "--job-name", "plain"], session=aws.session()) == 0
    req = aws.recorder.only("CreateTrainingJob")
    assert req["StoppingCondition"] == {"MaxRuntimeInSeconds": 86400}
    assert req["EnableManagedSpotTraining"] is False
    assert "CheckpointConfig" not in req
    assert capsys.readouterr().out.strip() == "s3://bucket/runs/plain/output/model.tar.gz"


def test_launch_spot_default_max_wait_covers_the_runtime(aws) -> None:
    launch.main([*BASE, "--train", "s3://bucket/t", "--spot", "--max-runtime", "3600"], session=aws.session())
    stopping = aws.recorder.only("CreateTrainingJob")["StoppingCondition"]
    assert stopping["MaxWaitTimeInSeconds"] >= stopping["MaxRuntimeInSeconds"] == 3600


@pytest.mark.parametrize(("hp", "message"), [
    ("epochs=0", "epochs"),
    ("learning_rte=0.1", "unknown hyperparameter"),
    ("depth=9", "depth"),
    ("image_size=100", "multiple of the network stride"),
])
def test_launch_rejects_bad_hyperparameters_before_any_aws_call(aws, hp: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        launch.main([*BASE, *DATA, "--hp", hp], session=aws.session())
    assert aws.recorder.calls == []


def test_launch_rejects_spot_max_wait_below_runtime(aws) -> None:
    with pytest.raises(ShipError, match="MaxWaitTimeInSeconds >= MaxRuntimeInSeconds"):
        launch.main([*BASE, *DATA, "--spot", "--max-runtime", "7200", "--max-wait", "3600"], session=aws.session())
    assert aws.recorder.calls == []


def test_wait_streams_the_jobs_cloudwatch_log_lines(aws, capsys) -> None:
    logs = aws.session().client("logs")
    now_ms = int(time.time() * 1000)  # CloudWatch drops events older than 14 days
    logs.create_log_group(logGroupName="/aws/sagemaker/TrainingJobs")
    logs.create_log_stream(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="logged/algo-1-1700000000")
    logs.put_log_events(logGroupName="/aws/sagemaker/TrainingJobs", logStreamName="logged/algo-1-1700000000",
                        logEvents=[{"timestamp": now_ms + i, "message": m} for i, m in
                                   enumerate(["epoch 1/1", "#metric epoch=1 validation:mean_angular_error=23.4"])])

    assert launch.main([*BASE, *DATA, "--job-name", "logged", "--wait"], session=aws.session()) == 0

    out = capsys.readouterr().err
    assert "[algo-1-1700000000] epoch 1/1" in out
    assert "[algo-1-1700000000] #metric epoch=1 validation:mean_angular_error=23.4" in out


class _FailingJobs:
    """describe_training_job answers InProgress once, then Failed with a reason."""

    def __init__(self) -> None:
        self.answers = [{"TrainingJobName": "bad", "TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"},
                        {"TrainingJobName": "bad", "TrainingJobStatus": "Failed", "SecondaryStatus": "Failed",
                         "FailureReason": "AlgorithmError: hyperparameter 'epochs' has the bad value 'x'"}]

    def describe_training_job(self, TrainingJobName: str) -> dict:
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


class _NoLogs:
    def describe_log_streams(self, **_: object) -> dict:
        return {"logStreams": []}


def test_a_failed_job_is_reported_with_its_failure_reason() -> None:
    desc = launch.follow_training_job(_FailingJobs(), _NoLogs(), "bad", interval_s=0, sleep=lambda _: None)
    with pytest.raises(ShipError, match="training job bad failed: AlgorithmError: hyperparameter 'epochs'"):
        launch.report_outcome(desc)


def test_cli_prints_what_and_fix_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "container.aws.launch", *BASE, *DATA, "--hp", "epochs=zero"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert re.search(r"^error: hyperparameter 'epochs' has the bad value 'zero'", proc.stderr, re.M)
    assert "\nfix: " in proc.stderr
    assert "Traceback" not in proc.stderr


def test_tune_sends_bayesian_search_over_validated_ranges(aws, capsys) -> None:
    code = tune.main([*BASE, *DATA, "--tuning-job-name", "hpo-1", "--hp", "epochs=5",
                      "--range", "learning_rate=1e-4:1e-2:log", "--range", "batch_size=8:32",
                      "--range", "lr_schedule=cosine,constant", "--max-jobs", "12", "--max-parallel", "3",
                      "--instance-type", "ml.g5.xlarge", "--spot", "--max-runtime", "3600"],
                     session=aws.session())

    assert code == 0
    req = aws.recorder.only("CreateHyperParameterTuningJob")
    config = req["HyperParameterTuningJobConfig"]
    assert req["HyperParameterTuningJobName"] == "hpo-1"
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize",
                                                          "MetricName": "validation:mean_angular_error"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 12, "MaxParallelTrainingJobs": 3}
    assert config["ParameterRanges"] == {
        "ContinuousParameterRanges": [{"Name": "learning_rate", "MinValue": "1e-4", "MaxValue": "1e-2",
                                       "ScalingType": "Logarithmic"}],
        "IntegerParameterRanges": [{"Name": "batch_size", "MinValue": "8", "MaxValue": "32", "ScalingType": "Auto"}],
        "CategoricalParameterRanges": [{"Name": "lr_schedule", "Values": ["cosine", "constant"]}],
    }
    definition = req["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"epochs": "5"}
    assert definition["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    names = {d["Name"] for d in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert "validation:mean_angular_error" in names
    assert definition["EnableManagedSpotTraining"] is True
    assert definition["StoppingCondition"]["MaxWaitTimeInSeconds"] >= 3600
    # A derived checkpoint path would be shared by every trial: only an explicit one is passed on.
    assert "CheckpointConfig" not in definition
    assert capsys.readouterr().out.strip() == "hpo-1"


def test_tune_defaults_search_learning_rate_batch_size_and_weight_decay(aws) -> None:
    tune.main([*BASE, *DATA, "--tuning-job-name", "hpo-2"], session=aws.session())
    ranges = aws.recorder.only("CreateHyperParameterTuningJob")["HyperParameterTuningJobConfig"]["ParameterRanges"]
    names = sorted(r["Name"] for kind in ranges.values() for r in kind)
    assert names == ["batch_size", "learning_rate", "weight_decay"]


@pytest.mark.parametrize(("spec", "message"), [
    ("batch_size=0:32", "would fail in the job"),
    ("learning_rate=0:1e-2:log", "logarithmic scaling needs MIN > 0"),
    ("nope=1:2", "not a hyperparameter"),
    ("epochs=5:1", "MIN must be below MAX"),
])
def test_tune_rejects_bad_ranges_before_any_aws_call(aws, spec: str, message: str) -> None:
    with pytest.raises(ShipError, match=message):
        tune.main([*BASE, *DATA, "--range", spec], session=aws.session())
    assert aws.recorder.calls == []


def test_tune_objective_must_be_a_metric_definition(aws) -> None:
    with pytest.raises(ShipError, match="not one of the metric definitions"):
        tune.main([*BASE, *DATA, "--objective", "validation:accuracy"], session=aws.session())


class _Tuned:
    def describe_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict:
        return {"HyperParameterTuningJobStatus": "Completed", "BestTrainingJob": {
            "TrainingJobName": "hpo-1-003-abc", "TunedHyperParameters": {"learning_rate": "0.0021"},
            "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "validation:mean_angular_error",
                                                            "Value": 17.5}}}

    def describe_training_job(self, TrainingJobName: str) -> dict:
        return {"ModelArtifacts": {"S3ModelArtifacts": f"s3://bucket/runs/{TrainingJobName}/output/model.tar.gz"}}


def test_best_job_names_the_winner_its_score_and_artifact() -> None:
    assert tune.best_job(_Tuned(), "hpo-1") == {
        "tuning_job": "hpo-1", "status": "Completed", "best_training_job": "hpo-1-003-abc",
        "objective": "validation:mean_angular_error", "objective_value": 17.5,
        "tuned_hyperparameters": {"learning_rate": "0.0021"},
        "model_artifact": "s3://bucket/runs/hpo-1-003-abc/output/model.tar.gz"}
