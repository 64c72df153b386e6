"""The laptop control plane: one set of flag validators (AWS's own rules) and one direction of imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from container.aws import deploy, drift_job, launch
from container.aws.common import ShipError
from container.aws.validate import check_name, check_role_arn, check_s3_uri

REPO = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


@pytest.mark.parametrize("uri", ["s3://my-bucket", "s3://my-bucket/", "s3://my.bucket-1/data/train",
                                 "s3://abc/key with spaces/x.png"])
def test_s3_uris_with_valid_bucket_names_pass(uri: str) -> None:
    assert check_s3_uri(uri, "--x") == uri


@pytest.mark.parametrize(("uri", "why"), [
    ("/local/dir", "does not start with s3://"),
    ("s3://", "does not start with s3://"),
    ("s3:///key", "does not start with s3://"),
    ("s3://My_Bucket/key", "lowercase"),
    ("s3://ab/key", "3-63"),
    ("s3://" + "b" * 64, "3-63"),
    ("s3://-bucket/key", "starting and ending"),
    ("s3://my..bucket/key", "adjacent dots"),
    ("s3://192.168.5.4/key", "IP address"),
    ("s3://xn--bucket/key", "reserves"),
    ("s3://data-s3alias/key", "reserves"),
])
def test_s3_uris_breaking_the_bucket_naming_rules_are_usage_errors(uri: str, why: str) -> None:
    with pytest.raises(ShipError, match=why) as info:
        check_s3_uri(uri, "--output")
    assert info.value.exit_code == 2 and "--output" in str(info.value)


def test_every_cli_applies_the_same_strict_s3_rule() -> None:
    # Before there was one rule, deploy and the drift job accepted any "s3://..." that launch refused.
    bad = "s3://My_Bucket/model.tar.gz"
    with pytest.raises(ShipError, match="lowercase"):
        deploy.Deployment(name="n", image="i", model_data=bad, role_arn=ROLE)
    with pytest.raises(ShipError, match="lowercase"):
        deploy.Transform(job_name="t", model_name="m", input_s3=bad, output_s3="s3://bkt/out")
    with pytest.raises(ShipError, match="lowercase"):
        launch.TrainingJob(name="j", image="i", role_arn=ROLE, output_path=bad, hyperparameters={},
                           channels={"train": "s3://bkt/t"}, metric_definitions=[])
    with pytest.raises(ShipError, match="lowercase"):
        drift_job.DriftJob(endpoint="e", image="i", role_arn=ROLE, capture_s3=bad, model_data="s3://bkt/m.tar.gz",
                           output_s3="s3://bkt/out")


def test_names_and_role_arns_follow_sagemaker_rules() -> None:
    assert check_name("a-b--c9", "--name") == "a-b--c9"
    for bad in ("", "-a", "a-", "a_b", "a" * 64):
        with pytest.raises(ShipError, match="not a valid SageMaker name"):
            check_name(bad, "--name")
    with pytest.raises(ShipError, match="1-32"):
        check_name("a" * 33, "tuning job name", max_length=32)
    assert check_role_arn(ROLE) == ROLE
    with pytest.raises(ShipError, match="IAM role ARN"):
        check_role_arn("SageMakerRole")


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", ["model", "train", "serve"])
def test_the_image_side_packages_never_import_the_control_plane(package: str) -> None:
    offenders = {str(path.relative_to(REPO)): sorted(m for m in _imported_modules(path) if m.startswith("container"))
                 for path in (REPO / package).rglob("*.py")}
    assert {path: mods for path, mods in offenders.items() if mods} == {}


def test_the_image_leaves_out_the_whole_control_plane() -> None:
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "container/aws/" in ignored
    # Nothing inside the image may need it: only container/aws itself imports container.aws.
    users = {str(path.relative_to(REPO)) for package in ("model", "train", "serve", "container")
             for path in (REPO / package).rglob("*.py")
             if "aws" not in path.relative_to(REPO).parts
             and any(m.startswith("container.aws") for m in _imported_modules(path))}
    assert users == set()
