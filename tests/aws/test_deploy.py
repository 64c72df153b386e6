"""container.aws.deploy against moto: the exact SageMaker and Application Auto Scaling requests, reruns, teardown."""

from __future__ import annotations

from pathlib import Path

import pytest

from container.aws import deploy
from container.aws.common import ShipError

pytestmark = pytest.mark.aws
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-byoc-normals:abc1234"
MODEL = "s3://bucket/runs/normals-1/output/model.tar.gz"
DEPLOY = ["--poll-seconds", "0", "deploy", "--name", "normals", "--image", IMAGE, "--model-data", MODEL,
          "--role", ROLE, "--instance-type", "ml.g4dn.xlarge", "--instance-count", "2", "--workers", "2",
          "--model-server-timeout", "30", "--max-payload-mb", "8", "--min-capacity", "1", "--max-capacity", "6",
          "--target-invocations", "250", "--scale-in-cooldown", "600", "--scale-out-cooldown", "120",
          "--data-capture", "s3://bucket/capture", "--capture-percent", "20", "--tag", "team=vision"]


def test_deploy_creates_model_config_endpoint_and_target_tracking(aws, capsys) -> None:
    assert deploy.main(DEPLOY, session=aws.session()) == 0

    ops = [op for op in aws.recorder.ops() if not op.startswith("Describe")]
    assert ops == ["CreateModel", "CreateEndpointConfig", "CreateEndpoint", "RegisterScalableTarget",
                   "PutScalingPolicy"]
    tags = [{"Key": "team", "Value": "vision"}]
    assert aws.recorder.only("CreateModel") == {
        "ModelName": "normals",
        "PrimaryContainer": {"Image": IMAGE, "ModelDataUrl": MODEL, "Mode": "SingleModel",
                             "Environment": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2",
                                             "SAGEMAKER_MODEL_SERVER_TIMEOUT": "30",
                                             "SAGEMAKER_MAX_PAYLOAD_IN_MB": "8"}},
        "ExecutionRoleArn": ROLE, "EnableNetworkIsolation": False, "Tags": tags}
    assert aws.recorder.only("CreateEndpointConfig") == {
        "EndpointConfigName": "normals",
        "ProductionVariants": [{"VariantName": "AllTraffic", "ModelName": "normals", "InstanceType": "ml.g4dn.xlarge",
                                "InitialInstanceCount": 2, "InitialVariantWeight": 1.0}],
        "DataCaptureConfig": {
            "EnableCapture": True, "InitialSamplingPercentage": 20, "DestinationS3Uri": "s3://bucket/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]}},
        "Tags": tags}
    assert aws.recorder.only("CreateEndpoint") == {"EndpointName": "normals", "EndpointConfigName": "normals",
                                                   "Tags": tags}
    assert aws.recorder.only("RegisterScalableTarget") == {
        "ServiceNamespace": "sagemaker", "ResourceId": "endpoint/normals/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "MinCapacity": 1, "MaxCapacity": 6}
    assert aws.recorder.only("PutScalingPolicy") == {
        "PolicyName": "normals-invocations-per-instance", "ServiceNamespace": "sagemaker",
        "ResourceId": "endpoint/normals/variant/AllTraffic",
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount", "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 250.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 600, "ScaleOutCooldown": 120}}
    assert capsys.readouterr().out.strip() == "arn:aws:sagemaker:us-east-1:123456789012:endpoint/normals"


def test_rerunning_deploy_reuses_what_exists_instead_of_failing(aws, capsys) -> None:
    deploy.main(DEPLOY, session=aws.session())
    capsys.readouterr()
    aws.recorder.calls.clear()

    assert deploy.main(DEPLOY, session=aws.session()) == 0

    err = capsys.readouterr().err
    for kind in ("model", "endpoint config", "endpoint"):
        assert f"{kind} normals already exists; reusing it" in err
    assert not {"CreateModel", "CreateEndpointConfig", "CreateEndpoint"} & set(aws.recorder.ops())


def test_no_autoscaling_registers_nothing(aws) -> None:
    deploy.main([*DEPLOY, "--no-autoscaling"], session=aws.session())
    assert not {"RegisterScalableTarget", "PutScalingPolicy"} & set(aws.recorder.ops())


def test_initial_count_outside_the_scaling_range_is_refused_before_any_call(aws) -> None:
    with pytest.raises(ShipError, match="outside --min-capacity"):
        deploy.main([*DEPLOY, "--instance-count", "9"], session=aws.session())
    assert aws.recorder.calls == []


def test_invoke_sends_the_file_with_its_content_type_and_saves_the_answer(aws, tmp_path: Path) -> None:
    # moto's server answers 500 to non-UTF-8 bodies, so the file here is JSON Lines (base64 images in real use).
    image = tmp_path / "photos.jsonl"
    image.write_bytes(b'{"b64": "iVBORw0KGgo="}\n')
    out = tmp_path / "answer.jsonl"

    assert deploy.main(["invoke", "--name", "normals", "--file", str(image), "--output", str(out)],
                       session=aws.session()) == 0

    assert aws.recorder.only("InvokeEndpoint") == {"EndpointName": "normals", "Body": image.read_bytes(),
                                                   "ContentType": "application/jsonlines",
                                                   "Accept": "application/json"}
    assert out.exists()  # moto answers with a canned body


def test_invoke_needs_a_content_type_for_unknown_suffixes(aws, tmp_path: Path) -> None:
    blob = tmp_path / "data.bin"
    blob.write_bytes(b"x")
    with pytest.raises(ShipError, match="cannot tell the content type"):
        deploy.main(["invoke", "--name", "normals", "--file", str(blob)], session=aws.session())


def test_transform_splits_json_lines_and_waits(aws, capsys) -> None:
    deploy.main([*DEPLOY, "--no-autoscaling"], session=aws.session())
    aws.recorder.calls.clear()
    capsys.readouterr()

    assert deploy.main(["--poll-seconds", "0", "transform", "--model-name", "normals", "--input", "s3://bucket/in/",
                        "--output", "s3://bucket/out/", "--job-name", "normals-batch-1", "--instance-type",
                        "ml.c5.xlarge", "--wait"], session=aws.session()) == 0

    assert aws.recorder.only("CreateTransformJob") == {
        "TransformJobName": "normals-batch-1", "ModelName": "normals", "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
                           "ContentType": "application/jsonlines", "SplitType": "Line", "CompressionType": "None"},
        "TransformOutput": {"S3OutputPath": "s3://bucket/out/", "Accept": "application/jsonlines",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.c5.xlarge", "InstanceCount": 1}}
    assert capsys.readouterr().out.strip() == "s3://bucket/out/"


def test_delete_tears_everything_down_and_a_second_delete_says_already_gone(aws, capsys) -> None:
    deploy.main(DEPLOY, session=aws.session())
    aws.recorder.calls.clear()

    assert deploy.main(["--poll-seconds", "0", "delete", "--name", "normals"], session=aws.session()) == 0
    deletes = [op for op in aws.recorder.ops() if not op.startswith(("Describe", "List"))]
    assert deletes == ["DeleteScalingPolicy", "DeregisterScalableTarget", "DeleteEndpoint", "DeleteEndpointConfig",
                       "DeleteModel"]
    sm = aws.session().client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_models()["Models"] == []
    capsys.readouterr()

    assert deploy.main(["--poll-seconds", "0", "delete", "--name", "normals"], session=aws.session()) == 0
    assert capsys.readouterr().err.count("already gone") == 5


BASE = ["--poll-seconds", "0", "deploy", "--name", "normals", "--image", IMAGE, "--role", ROLE, "--instance-type",
        "ml.m5.xlarge"]


def test_async_endpoint_gets_its_output_path_and_tells_the_container(aws) -> None:
    assert deploy.main([*BASE, "--model-data", MODEL, "--async-output", "s3://bucket/async-out/", "--workers", "2"],
                       session=aws.session()) == 0
    config = aws.recorder.only("CreateEndpointConfig")
    assert config["AsyncInferenceConfig"] == {"OutputConfig": {"S3OutputPath": "s3://bucket/async-out/"},
                                              "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2}}
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    env = aws.recorder.only("CreateModel")["PrimaryContainer"]["Environment"]
    assert env == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SERVE_ENDPOINT_TYPE": "async"}


def test_serverless_endpoint_has_memory_and_concurrency_and_no_instance_scaling(aws) -> None:
    assert deploy.main([*BASE, "--model-data", MODEL, "--serverless-memory", "3072", "--serverless-concurrency", "4"],
                       session=aws.session()) == 0
    variant = aws.recorder.only("CreateEndpointConfig")["ProductionVariants"][0]
    assert variant == {"VariantName": "AllTraffic", "ModelName": "normals", "InitialVariantWeight": 1.0,
                       "ServerlessConfig": {"MemorySizeInMB": 3072, "MaxConcurrency": 4}}
    assert aws.recorder.only("CreateModel")["PrimaryContainer"]["Environment"] == {"SERVE_ENDPOINT_TYPE": "serverless"}
    assert "RegisterScalableTarget" not in aws.recorder.ops()


def test_uncompressed_model_data_is_an_s3_prefix(aws) -> None:
    assert deploy.main([*BASE, "--model-data", "s3://bucket/models/normals/", "--no-autoscaling"],
                       session=aws.session()) == 0
    container = aws.recorder.only("CreateModel")["PrimaryContainer"]
    assert "ModelDataUrl" not in container
    assert container["ModelDataSource"] == {"S3DataSource": {"S3Uri": "s3://bucket/models/normals/",
                                                             "S3DataType": "S3Prefix", "CompressionType": "None"}}


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--model-data", "s3://bucket/model.zip"], "neither a .tar.gz"),
    (["--model-data", MODEL, "--serverless-memory", "3000"], "--serverless-memory"),
    (["--model-data", MODEL, "--serverless-memory", "2048", "--async-output", "s3://b/o/"], "exclude each other"),
])
def test_bad_inference_options_are_refused_before_any_call(aws, extra, fragment) -> None:
    with pytest.raises(ShipError, match=fragment):
        deploy.main([*BASE, *extra], session=aws.session())
    assert not aws.recorder.ops()
