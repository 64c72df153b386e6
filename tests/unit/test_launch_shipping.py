"""The laptop-side shipping tools: torch-free imports, metric regexes, request builders (no AWS, no moto)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from container.aws import deploy, launch
from container.aws.common import ShipError, is_already_exists, is_not_found, parse_key_values
from train.config import DEFAULT_FAMILY

REPO = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def test_shipping_modules_import_without_torch_numpy_or_the_server() -> None:
    # A fresh interpreter: the test session itself may already have torch loaded.
    code = (
        "import sys\n"
        "import container.aws.launch, container.aws.tune, container.aws.deploy, container.aws.ecr\n"
        "import container.aws.common, container.aws.validate, container.aws.monitor\n"
        "container.aws.launch.validate_hyperparameters({'epochs': '2', 'base_channels': '8'})\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'PIL', 'flask', 'gunicorn', 'model.family', 'serve.app')"
        " if m in sys.modules)\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_metric_definitions_capture_every_metric_line_the_training_prints() -> None:
    defs = launch.metric_definitions(DEFAULT_FAMILY)
    names = [d["Name"] for d in defs]
    expected = {"train:loss", "validation:loss", "validation:mean_angular_error", "validation:median_angular_error",
                "validation:within_11.25deg", "validation:within_22.5deg", "validation:within_30deg",
                "test:mean_angular_error", "train:images_per_second"}
    assert expected <= set(names)
    for d in defs:
        line = f"#metric epoch=3 {d['Name']}=23.412100"
        match = re.search(d["Regex"], line)
        assert match is not None and match.group(1) == "23.412100", d
        # No regex picks up another metric's line (e.g. validation:loss vs train:loss).
        for other in names:
            if other != d["Name"]:
                assert re.search(d["Regex"], f"#metric epoch=3 {other}=1.0") is None, (d["Name"], other)


def test_metric_definitions_respect_the_api_limits() -> None:
    defs = json.loads((REPO / "train/metric_definitions.json").read_text())
    assert len(defs) <= 40
    assert all(1 <= len(d["Name"]) <= 255 and 1 <= len(d["Regex"]) <= 500 for d in defs)


def test_hyperparameters_are_sent_as_strings() -> None:
    assert launch.validate_hyperparameters({"epochs": 3, "learning_rate": 0.01, "augment": False}) == {
        "epochs": "3", "learning_rate": "0.01", "augment": "false"}


def test_custom_family_checks_training_fields_and_leaves_model_fields_to_the_job() -> None:
    hps = {"model_family": "my_pkg.family:Mine", "epochs": "2", "widths": "64,128"}
    assert launch.validate_hyperparameters(hps) == hps


def _job(**overrides: object) -> launch.TrainingJob:
    kwargs: dict = {"name": "job-1", "image": "img:1", "role_arn": ROLE, "output_path": "s3://bkt/out",
                    "hyperparameters": {}, "channels": {"train": "s3://bkt/train"}, "metric_definitions": []}
    kwargs.update(overrides)
    return launch.TrainingJob(**kwargs)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"name": "bad_name"}, "job name"),
    ({"role_arn": "SageMakerRole"}, "IAM role ARN"),
    ({"output_path": "/local/dir"}, "not an S3 URI"),
    ({"channels": {"train": "http://x"}}, "not an S3 URI"),
    ({"channels": {}}, "no --train channel"),
    ({"max_wait_s": 100}, "--max-wait only applies"),
    ({"max_runtime_s": 40 * 24 * 3600}, "outside"),
])
def test_training_job_refuses_requests_aws_would_reject(overrides: dict, message: str) -> None:
    with pytest.raises(ShipError, match=message):
        _job(**overrides)


def test_synthetic_runs_need_no_train_channel() -> None:
    req = _job(channels={}, hyperparameters={"synthetic_samples": "64"}).request()
    assert "InputDataConfig" not in req


def test_sharded_distribution_applies_to_the_train_channel_only() -> None:
    job = _job(channels={"train": "s3://bkt/t", "validation": "s3://bkt/v"}, train_distribution="ShardedByS3Key")
    dist = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
            for c in job.input_data_config()}
    assert dist == {"train": "ShardedByS3Key", "validation": "FullyReplicated"}


def test_explicit_checkpoint_uri_is_kept_for_resuming() -> None:
    req = _job(spot=True, checkpoint_s3="s3://bkt/ckpt/run-a").request()
    assert req["CheckpointConfig"] == {"S3Uri": "s3://bkt/ckpt/run-a", "LocalPath": "/opt/ml/checkpoints"}


@pytest.mark.parametrize(("suffix", "content_type"), [
    (".png", "image/png"), (".jpg", "image/jpeg"), (".jpeg", "image/jpeg"), (".npy", "application/x-npy"),
    (".json", "application/json"), (".jsonl", "application/jsonlines")])
def test_invoke_guesses_the_content_types_the_server_accepts(suffix: str, content_type: str) -> None:
    assert deploy.CONTENT_TYPES[suffix] == content_type


def test_deployment_refuses_a_model_that_is_neither_a_tarball_nor_a_prefix() -> None:
    with pytest.raises(ShipError, match=r"neither a \.tar\.gz nor an S3 prefix"):
        deploy.Deployment(name="n", image="i", model_data="s3://bkt/model.zip", role_arn=ROLE)
    assert deploy.Deployment(name="n", image="i", model_data="s3://bkt/model/", role_arn=ROLE).model_data


def test_key_value_flags() -> None:
    assert parse_key_values(["a=1", "b=x=y"], "--tag") == {"a": "1", "b": "x=y"}
    with pytest.raises(ShipError, match="not KEY=VALUE"):
        parse_key_values(["novalue"], "--tag")


def _client_error(code: str, message: str) -> Exception:
    import botocore.exceptions

    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, "Op")


def test_aws_error_classification() -> None:
    assert is_not_found(_client_error("ValidationException", "Could not find model \"x\"."))
    assert is_not_found(_client_error("ObjectNotFoundException", "No scalable target registered"))
    assert not is_not_found(_client_error("ValidationException", "Value 'x' at 'instanceType' failed"))
    assert is_already_exists(_client_error("ValidationException", "Cannot create already existing endpoint"))
    assert is_already_exists(_client_error("RepositoryAlreadyExistsException", "exists"))
