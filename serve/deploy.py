"""Deploy, call and tear down a SageMaker endpoint for our image, from a laptop (boto3 only, no torch).

    python -m serve.deploy deploy --name normals --image URI --model-data s3://.../model.tar.gz --role ARN
    python -m serve.deploy invoke --name normals --file photo.png --output normals.png --accept image/png
    python -m serve.deploy transform --model-name normals --input s3://b/in/ --output s3://b/out/ --wait
    python -m serve.deploy delete --name normals

``deploy`` creates the Model, the EndpointConfig and the Endpoint (all named ``--name``), waits for
InService and registers target-tracking auto scaling on invocations per instance. ``--async-output S3_URI``
makes an asynchronous endpoint instead, ``--serverless-memory MB`` a serverless one (the container is told
with SERVE_ENDPOINT_TYPE, which sets its payload and answer limits). ``--model-data`` is a model.tar.gz or an
S3 prefix ending in ``/`` holding model.pt and model.json uncompressed. Every step that already
exists is reported and reused, so re-running after a failure continues where it stopped. ``delete`` removes
the scaling policy, the endpoint, its config and the model; what is already gone is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import botocore.exceptions

from container.aws.common import (
    ShipError,
    check_s3_uri,
    error_code,
    error_message,
    explain,
    is_not_found,
    make_session,
    parse_key_values,
    poll,
    run_cli,
    tag_list,
)

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"
_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$")
#: File suffix -> request content type for `invoke` (the server's codecs accept these).
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".npy": "application/x-npy",
                 ".json": "application/json", ".jsonl": "application/jsonlines"}


def _check_name(name: str, flag: str) -> str:
    if not _NAME.match(name):
        raise ShipError(f"{flag} {name!r} is not a valid SageMaker name",
                        "use 1-63 letters, digits and hyphens, starting with a letter or digit", exit_code=2)
    return name


@dataclass(frozen=True)
class Scaling:
    min_capacity: int = 1
    max_capacity: int = 4
    target_invocations: float = 100.0  # per instance per minute (the metric's unit)
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60

    def __post_init__(self) -> None:
        if not 1 <= self.min_capacity <= self.max_capacity:
            raise ShipError(f"auto scaling needs 1 <= --min-capacity ({self.min_capacity}) <= --max-capacity "
                            f"({self.max_capacity})", "fix the two flags (or pass --no-autoscaling)", exit_code=2)
        if self.target_invocations <= 0:
            raise ShipError("--target-invocations must be positive", "pass e.g. 100 (per instance per minute)",
                            exit_code=2)


@dataclass(frozen=True)
class Deployment:
    """Everything `deploy` creates; the *_request methods give the exact API parameters."""

    name: str
    image: str
    model_data: str
    role_arn: str
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    environment: Mapping[str, str] = field(default_factory=dict)
    data_capture_s3: str | None = None
    capture_percent: int = 100
    startup_timeout_s: int | None = None
    network_isolation: bool = False
    scaling: Scaling | None = field(default_factory=Scaling)
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Asynchronous inference: answers go to this S3 prefix.
    async_output_s3: str | None = None
    #: Serverless inference: memory (1024-6144 MB, steps of 1024) and most concurrent invocations.
    serverless_memory_mb: int | None = None
    serverless_concurrency: int = 5

    def __post_init__(self) -> None:
        _check_name(self.name, "--name")
        check_s3_uri(self.model_data, "--model-data")
        if not self.model_data.endswith((".tar.gz", "/")):
            raise ShipError(f"--model-data {self.model_data} is neither a .tar.gz nor an S3 prefix ending in /",
                            "pass the training job's model.tar.gz (printed by python -m train.launch), or a prefix "
                            "s3://bucket/model/ holding model.pt and model.json uncompressed", exit_code=2)
        if self.async_output_s3 and self.serverless_memory_mb:
            raise ShipError("--async-output and --serverless-memory exclude each other",
                            "pick one inference option", exit_code=2)
        if self.async_output_s3:
            check_s3_uri(self.async_output_s3, "--async-output")
        memory, concurrency = self.serverless_memory_mb, self.serverless_concurrency
        if memory is not None and (memory not in range(1024, 6145, 1024) or not 1 <= concurrency <= 200):
            raise ShipError("--serverless-memory must be 1024, 2048, ..., 6144 and --serverless-concurrency 1..200",
                            "pass e.g. --serverless-memory 3072 (the image serves within 3 GB)", exit_code=2)
        if not _ROLE_ARN.match(self.role_arn):
            raise ShipError(f"--role {self.role_arn!r} is not an IAM role ARN",
                            "pass the SageMaker execution role, arn:aws:iam::ACCOUNT:role/NAME", exit_code=2)
        if self.instance_count < 1:
            raise ShipError("--instance-count must be at least 1", "pass a positive number", exit_code=2)
        if self.data_capture_s3:
            check_s3_uri(self.data_capture_s3, "--data-capture")
        if not 0 < self.capture_percent <= 100:
            raise ShipError("--capture-percent must be in 1..100", "pass e.g. 20", exit_code=2)
        if self.scaling and not self.scaling.min_capacity <= self.instance_count <= self.scaling.max_capacity:
            raise ShipError(f"--instance-count {self.instance_count} is outside --min-capacity.."
                            f"--max-capacity ({self.scaling.min_capacity}..{self.scaling.max_capacity})",
                            "make the initial count lie within the scaling range", exit_code=2)

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.name}/variant/{VARIANT}"

    @property
    def endpoint_type(self) -> str:
        return "async" if self.async_output_s3 else "serverless" if self.serverless_memory_mb else "realtime"

    def _container(self) -> dict[str, Any]:
        env = dict(self.environment)
        if self.endpoint_type != "realtime":
            env.setdefault("SERVE_ENDPOINT_TYPE", self.endpoint_type)
        container: dict[str, Any] = {"Image": self.image, "Mode": "SingleModel", "Environment": env}
        if self.model_data.endswith("/"):  # uncompressed: SageMaker copies the prefix's objects to /opt/ml/model
            container["ModelDataSource"] = {"S3DataSource": {"S3Uri": self.model_data, "S3DataType": "S3Prefix",
                                                             "CompressionType": "None"}}
        else:
            container["ModelDataUrl"] = self.model_data
        return container

    def model_request(self) -> dict[str, Any]:
        req: dict[str, Any] = {
            "ModelName": self.name,
            "PrimaryContainer": self._container(),
            "ExecutionRoleArn": self.role_arn,
            "EnableNetworkIsolation": self.network_isolation,
        }
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req

    def endpoint_config_request(self) -> dict[str, Any]:
        variant: dict[str, Any] = {"VariantName": VARIANT, "ModelName": self.name, "InitialVariantWeight": 1.0}
        if self.serverless_memory_mb:
            variant["ServerlessConfig"] = {"MemorySizeInMB": self.serverless_memory_mb,
                                           "MaxConcurrency": self.serverless_concurrency}
        else:
            variant.update(InstanceType=self.instance_type, InitialInstanceCount=self.instance_count)
        if self.startup_timeout_s:
            variant["ContainerStartupHealthCheckTimeoutInSeconds"] = self.startup_timeout_s
        req: dict[str, Any] = {"EndpointConfigName": self.name, "ProductionVariants": [variant]}
        if self.async_output_s3:
            workers = self.environment.get("SAGEMAKER_MODEL_SERVER_WORKERS")
            req["AsyncInferenceConfig"] = {
                "OutputConfig": {"S3OutputPath": self.async_output_s3},
                # One invocation per worker: each may hold a payload of up to 1 GB.
                "ClientConfig": {"MaxConcurrentInvocationsPerInstance": int(workers) if workers else 2},
            }
        if self.data_capture_s3:
            req["DataCaptureConfig"] = {
                "EnableCapture": True,
                "InitialSamplingPercentage": self.capture_percent,
                "DestinationS3Uri": self.data_capture_s3,
                "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                # JSON bodies are stored as text; images and .npy are stored base64-encoded.
                "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json", "application/jsonlines"]},
            }
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req

    def endpoint_request(self) -> dict[str, Any]:
        req: dict[str, Any] = {"EndpointName": self.name, "EndpointConfigName": self.name}
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req

    def scalable_target_request(self) -> dict[str, Any]:
        assert self.scaling is not None
        return {"ServiceNamespace": "sagemaker", "ResourceId": self.resource_id,
                "ScalableDimension": SCALABLE_DIMENSION,
                "MinCapacity": self.scaling.min_capacity, "MaxCapacity": self.scaling.max_capacity}

    def scaling_policy_request(self) -> dict[str, Any]:
        assert self.scaling is not None
        return {
            "PolicyName": f"{self.name}-invocations-per-instance",
            "ServiceNamespace": "sagemaker",
            "ResourceId": self.resource_id,
            "ScalableDimension": SCALABLE_DIMENSION,
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": float(self.scaling.target_invocations),
                "PredefinedMetricSpecification": {"PredefinedMetricType": SCALING_METRIC},
                "ScaleInCooldown": self.scaling.scale_in_cooldown_s,
                "ScaleOutCooldown": self.scaling.scale_out_cooldown_s,
            },
        }


def _exists(describe: Callable[[], Mapping[str, Any]]) -> Mapping[str, Any] | None:
    try:
        return describe()
    except botocore.exceptions.ClientError as exc:
        if is_not_found(exc):
            return None
        raise


def _create_once(kind: str, name: str, describe: Callable[[], Mapping[str, Any]], create: Callable[[], Any],
                 log: TextIO) -> bool:
    """Create unless it exists; True when created. Existing ones are reported and reused, never replaced."""
    try:
        if _exists(describe) is not None:
            print(f"==> {kind} {name} already exists; reusing it (delete it first to change it)", file=log)
            return False
        create()
    except ShipError:
        raise
    except Exception as exc:
        raise explain(exc, f"creating {kind} {name}") from None
    print(f"==> created {kind} {name}", file=log)
    return True


def deploy(session: Any, d: Deployment, *, wait: bool = True, interval_s: float = 30, log: TextIO | None = None,
           sleep: Callable[[float], None] = time.sleep) -> Mapping[str, Any]:
    log = log or sys.stderr
    sm = session.client("sagemaker")
    _create_once("model", d.name, lambda: sm.describe_model(ModelName=d.name),
                 lambda: sm.create_model(**d.model_request()), log)
    _create_once("endpoint config", d.name, lambda: sm.describe_endpoint_config(EndpointConfigName=d.name),
                 lambda: sm.create_endpoint_config(**d.endpoint_config_request()), log)
    _create_once("endpoint", d.name, lambda: sm.describe_endpoint(EndpointName=d.name),
                 lambda: sm.create_endpoint(**d.endpoint_request()), log)
    if not wait:
        return sm.describe_endpoint(EndpointName=d.name)

    def on_poll(desc: Mapping[str, Any]) -> None:
        print(f"[{d.name}] {desc.get('EndpointStatus')}", file=log, flush=True)

    # First start-up pulls the image and the model and waits for /ping: typically 5-10 minutes.
    desc = poll(lambda: sm.describe_endpoint(EndpointName=d.name), "EndpointStatus",
                ("InService", "Failed", "OutOfService"), interval_s=interval_s, on_poll=on_poll, sleep=sleep)
    if desc["EndpointStatus"] != "InService":
        raise ShipError(f"endpoint {d.name} is {desc['EndpointStatus']}: {desc.get('FailureReason') or 'no reason'}",
                        f"read CloudWatch /aws/sagemaker/Endpoints/{d.name}; then `python -m serve.deploy delete "
                        f"--name {d.name}` and deploy again")
    if d.scaling is not None:
        aas = session.client("application-autoscaling")
        try:
            # Both calls are upserts in AWS: re-running updates the range and the policy.
            aas.register_scalable_target(**d.scalable_target_request())
            aas.put_scaling_policy(**d.scaling_policy_request())
        except Exception as exc:
            raise explain(exc, f"setting up auto scaling for {d.name}") from None
        s = d.scaling
        print(f"==> auto scaling {s.min_capacity}..{s.max_capacity} instances, target {s.target_invocations:g} "
              "invocations per instance per minute", file=log)
    return desc


def delete(session: Any, name: str, *, interval_s: float = 15, log: TextIO | None = None,
           sleep: Callable[[float], None] = time.sleep) -> None:
    log = log or sys.stderr
    sm = session.client("sagemaker")
    aas = session.client("application-autoscaling")
    resource_id = f"endpoint/{name}/variant/{VARIANT}"

    def step(what: str, call: Callable[[], Any]) -> bool:
        try:
            call()
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc) or (error_code(exc) == "ValidationException" and "no scal" in
                                     error_message(exc).lower()):
                print(f"==> {what}: already gone", file=log)
                return False
            raise explain(exc, what) from None
        print(f"==> {what}: done", file=log)
        return True

    step(f"delete scaling policy of {name}", lambda: aas.delete_scaling_policy(
        PolicyName=f"{name}-invocations-per-instance", ServiceNamespace="sagemaker", ResourceId=resource_id,
        ScalableDimension=SCALABLE_DIMENSION))
    step(f"deregister scalable target of {name}", lambda: aas.deregister_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource_id, ScalableDimension=SCALABLE_DIMENSION))
    if step(f"delete endpoint {name}", lambda: sm.delete_endpoint(EndpointName=name)):
        # Billing stops once it is gone; the config and model can go while it is Deleting.
        def gone() -> Mapping[str, Any]:
            return _exists(lambda: sm.describe_endpoint(EndpointName=name)) or {"EndpointStatus": "Deleted"}

        poll(gone, "EndpointStatus", ("Deleted", "Failed"), interval_s=interval_s, sleep=sleep, timeout_s=1800)
    step(f"delete endpoint config {name}", lambda: sm.delete_endpoint_config(EndpointConfigName=name))
    step(f"delete model {name}", lambda: sm.delete_model(ModelName=name))


def invoke(session: Any, name: str, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
    runtime = session.client("sagemaker-runtime")
    try:
        resp = runtime.invoke_endpoint(EndpointName=name, Body=body, ContentType=content_type, Accept=accept)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) == "ModelError":
            # The container answered with an error status; its message is in the error body.
            raise ShipError(f"the model server rejected the request: {error_message(exc)}",
                            f"check --content-type/--accept and the payload; server logs are in CloudWatch "
                            f"/aws/sagemaker/Endpoints/{name}") from None
        raise explain(exc, f"invoking endpoint {name}") from None
    return resp["Body"].read(), str(resp.get("ContentType", ""))


@dataclass(frozen=True)
class Transform:
    job_name: str
    model_name: str
    input_s3: str
    output_s3: str
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    content_type: str = "application/jsonlines"
    accept: str = "application/jsonlines"
    split_type: str = "Line"
    strategy: str = "MultiRecord"
    max_payload_mb: int = 6
    max_concurrent: int | None = None
    environment: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_name(self.job_name, "--job-name")
        _check_name(self.model_name, "--model-name")
        check_s3_uri(self.input_s3, "--input")
        check_s3_uri(self.output_s3, "--output")
        if not 0 <= self.max_payload_mb <= 100:
            raise ShipError("--max-payload-mb must be in 0..100", "pass e.g. 6", exit_code=2)

    def request(self) -> dict[str, Any]:
        req: dict[str, Any] = {
            "TransformJobName": self.job_name,
            "ModelName": self.model_name,
            "BatchStrategy": self.strategy,
            "MaxPayloadInMB": self.max_payload_mb,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.input_s3}},
                "ContentType": self.content_type,
                "SplitType": self.split_type,
                "CompressionType": "None",
            },
            # One output line per input line, in order: the server keeps the record count of each mini-batch.
            "TransformOutput": {"S3OutputPath": self.output_s3, "Accept": self.accept,
                                "AssembleWith": "Line" if self.split_type == "Line" else "None"},
            "TransformResources": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count},
        }
        if self.max_concurrent:
            req["MaxConcurrentTransforms"] = self.max_concurrent
        if self.environment:
            req["Environment"] = dict(self.environment)
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req


def start_transform(session: Any, t: Transform, *, wait: bool, interval_s: float = 30, log: TextIO | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> Mapping[str, Any]:
    log = log or sys.stderr
    sm = session.client("sagemaker")

    def describe() -> Mapping[str, Any]:
        return sm.describe_transform_job(TransformJobName=t.job_name)

    _create_once("transform job", t.job_name, describe, lambda: sm.create_transform_job(**t.request()), log)
    if not wait:
        return describe()
    desc = poll(describe, "TransformJobStatus", ("Completed", "Failed", "Stopped"), interval_s=interval_s,
                sleep=sleep, on_poll=lambda d: print(f"[{t.job_name}] {d.get('TransformJobStatus')}", file=log))
    if desc["TransformJobStatus"] != "Completed":
        raise ShipError(f"transform job {t.job_name} is {desc['TransformJobStatus']}: "
                        f"{desc.get('FailureReason') or 'no reason given'}",
                        f"read CloudWatch /aws/sagemaker/TransformJobs/{t.job_name}; bad records fail the whole "
                        "file, so check the input lines")
    return desc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m serve.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)")
    parser.add_argument("--poll-seconds", type=float, default=30, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("deploy", help="create model, endpoint config, endpoint; wait; set up auto scaling")
    p.add_argument("--name", required=True, help="name of the model, the endpoint config and the endpoint")
    p.add_argument("--image", required=True, help="image URI (the last line of ./build_and_push.sh)")
    p.add_argument("--model-data", required=True,
                   help="s3://.../model.tar.gz (printed by python -m train.launch), or an S3 prefix ending in / "
                        "holding model.pt and model.json uncompressed")
    p.add_argument("--role", help="SageMaker execution role ARN (default: $SAGEMAKER_ROLE_ARN)")
    p.add_argument("--instance-type", default="ml.g5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--workers", type=int, help="SAGEMAKER_MODEL_SERVER_WORKERS (default: the server picks)")
    p.add_argument("--model-server-timeout", type=int, help="SAGEMAKER_MODEL_SERVER_TIMEOUT seconds (default 60)")
    p.add_argument("--max-payload-mb", type=int, help="SAGEMAKER_MAX_PAYLOAD_IN_MB (default 6)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="more container environment (repeatable)")
    p.add_argument("--startup-timeout", type=int, metavar="SECONDS",
                   help="ContainerStartupHealthCheckTimeoutInSeconds (raise for big models)")
    p.add_argument("--data-capture", metavar="S3_URI", help="capture requests and responses to this S3 prefix")
    p.add_argument("--capture-percent", type=int, default=100, help="share of requests captured (default: 100)")
    p.add_argument("--network-isolation", action="store_true")
    p.add_argument("--no-autoscaling", action="store_true", help="do not register auto scaling")
    p.add_argument("--min-capacity", type=int, default=1)
    p.add_argument("--max-capacity", type=int, default=4)
    p.add_argument("--target-invocations", type=float, default=100.0,
                   help="target invocations per instance per minute (default: 100)")
    p.add_argument("--scale-in-cooldown", type=int, default=300, metavar="SECONDS")
    p.add_argument("--scale-out-cooldown", type=int, default=60, metavar="SECONDS")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--async-output", metavar="S3_URI", help="asynchronous endpoint writing answers here")
    p.add_argument("--serverless-memory", type=int, metavar="MB", help="serverless endpoint of this memory (1024-6144)")
    p.add_argument("--serverless-concurrency", type=int, default=5, help="serverless MaxConcurrency (default: 5)")
    p.add_argument("--no-wait", action="store_true", help="return after CreateEndpoint (no auto scaling then)")
    p.add_argument("--dry-run", action="store_true", help="print the requests and stop")

    p = sub.add_parser("invoke", help="send a file to the endpoint and save the response")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--file", required=True, type=Path)
    p.add_argument("--content-type", help="default: from the file suffix (.png .jpg .npy .json .jsonl)")
    p.add_argument("--accept", default="application/json", help="response type (default: application/json)")
    p.add_argument("--output", type=Path, help="where to save the response (default: stdout)")

    p = sub.add_parser("transform", help="start a batch transform job (JSON Lines by default)")
    p.add_argument("--model-name", required=True, help="the model created by `deploy` (its --name)")
    p.add_argument("--input", required=True, help="S3 prefix of the input files")
    p.add_argument("--output", required=True, help="S3 prefix for the .out files")
    p.add_argument("--job-name", help="default: MODEL-transform-YYYYmmdd-HHMMSS")
    p.add_argument("--instance-type", default="ml.g5.xlarge")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--content-type", default="application/jsonlines")
    p.add_argument("--accept", default="application/jsonlines")
    p.add_argument("--split-type", choices=("Line", "None"), default="Line")
    p.add_argument("--strategy", choices=("MultiRecord", "SingleRecord"), default="MultiRecord")
    p.add_argument("--max-payload-mb", type=int, default=6)
    p.add_argument("--max-concurrent", type=int, help="MaxConcurrentTransforms (default: the container says)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("delete", help="remove auto scaling, endpoint, endpoint config, model and monitoring")
    p.add_argument("--name", required=True)
    return parser


def deployment_from_args(args: argparse.Namespace) -> Deployment:
    role = args.role or os.environ.get("SAGEMAKER_ROLE_ARN")
    if not role:
        raise ShipError("missing --role", "pass --role arn:aws:iam::ACCOUNT:role/NAME or export SAGEMAKER_ROLE_ARN",
                        exit_code=2)
    env: dict[str, str] = {}
    for var, value in (("SAGEMAKER_MODEL_SERVER_WORKERS", args.workers),
                       ("SAGEMAKER_MODEL_SERVER_TIMEOUT", args.model_server_timeout),
                       ("SAGEMAKER_MAX_PAYLOAD_IN_MB", args.max_payload_mb)):
        if value is not None:
            env[var] = str(value)
    env.update(parse_key_values(args.env, "--env"))
    # Serverless endpoints scale by themselves; instance auto scaling does not apply to them.
    scaling = None if args.no_autoscaling or args.no_wait or args.serverless_memory else Scaling(
        min_capacity=args.min_capacity, max_capacity=args.max_capacity, target_invocations=args.target_invocations,
        scale_in_cooldown_s=args.scale_in_cooldown, scale_out_cooldown_s=args.scale_out_cooldown)
    return Deployment(name=args.name, image=args.image, model_data=args.model_data, role_arn=role,
                      instance_type=args.instance_type, instance_count=args.instance_count, environment=env,
                      data_capture_s3=args.data_capture, capture_percent=args.capture_percent,
                      startup_timeout_s=args.startup_timeout, network_isolation=args.network_isolation,
                      scaling=scaling, tags=parse_key_values(args.tag, "--tag"), async_output_s3=args.async_output,
                      serverless_memory_mb=args.serverless_memory, serverless_concurrency=args.serverless_concurrency)


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "deploy":
        d = deployment_from_args(args)
        if args.dry_run:
            requests = {"CreateModel": d.model_request(), "CreateEndpointConfig": d.endpoint_config_request(),
                        "CreateEndpoint": d.endpoint_request()}
            if d.scaling:
                requests["RegisterScalableTarget"] = d.scalable_target_request()
                requests["PutScalingPolicy"] = d.scaling_policy_request()
            print(json.dumps(requests, indent=2))
            return 0
        session = session or make_session(args.region)
        desc = deploy(session, d, wait=not args.no_wait, interval_s=args.poll_seconds)
        print(f"==> endpoint {d.name} is {desc.get('EndpointStatus')}; try: python -m serve.deploy invoke "
              f"--name {d.name} --file image.png", file=sys.stderr)
        print(desc.get("EndpointArn", d.name))
        return 0
    if args.command == "invoke":
        try:
            body = args.file.read_bytes()
        except OSError as exc:
            raise ShipError(f"cannot read --file {args.file} ({exc.strerror})", "pass an existing file",
                            exit_code=2) from None
        content_type = args.content_type or CONTENT_TYPES.get(args.file.suffix.lower())
        if not content_type:
            raise ShipError(f"cannot tell the content type of {args.file.name}",
                            "pass --content-type (image/png, image/jpeg, application/x-npy, application/json, "
                            "application/jsonlines)", exit_code=2)
        session = session or make_session(args.region)
        payload, returned_type = invoke(session, args.name, body, content_type, args.accept)
        if args.output:
            args.output.write_bytes(payload)
            print(f"==> {len(payload)} bytes of {returned_type or 'unknown type'} saved to {args.output}",
                  file=sys.stderr)
        else:
            sys.stdout.buffer.write(payload)
            sys.stdout.flush()
        return 0
    if args.command == "transform":
        t = Transform(job_name=args.job_name or f"{args.model_name}-transform-"
                      f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"[:63],
                      model_name=args.model_name, input_s3=args.input, output_s3=args.output,
                      instance_type=args.instance_type, instance_count=args.instance_count,
                      content_type=args.content_type, accept=args.accept, split_type=args.split_type,
                      strategy=args.strategy, max_payload_mb=args.max_payload_mb, max_concurrent=args.max_concurrent,
                      environment=parse_key_values(args.env, "--env"), tags=parse_key_values(args.tag, "--tag"))
        if args.dry_run:
            print(json.dumps(t.request(), indent=2))
            return 0
        session = session or make_session(args.region)
        desc = start_transform(session, t, wait=args.wait, interval_s=args.poll_seconds)
        print(f"==> transform job {t.job_name} is {desc.get('TransformJobStatus')}", file=sys.stderr)
        print(t.output_s3)
        return 0
    session = session or make_session(args.region)
    delete(session, args.name, interval_s=args.poll_seconds)
    from serve.monitor import MonitorPlan, remove  # the endpoint's alarms and dashboard go with it

    remove(session, MonitorPlan(args.name))
    return 0


if __name__ == "__main__":
    run_cli(main)
