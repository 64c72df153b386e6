"""What a deployment creates, as frozen values: the endpoint (model, config, endpoint, auto scaling) and a
batch transform job. Each validates its flags on construction and builds the exact API request parameters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from container.aws.common import ShipError, tag_list
from container.aws.validate import check_name, check_role_arn, check_s3_uri

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_METRIC = "SageMakerVariantInvocationsPerInstance"


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
        check_name(self.name, "--name")
        check_s3_uri(self.model_data, "--model-data")
        if not self.model_data.endswith((".tar.gz", "/")):
            raise ShipError(f"--model-data {self.model_data} is neither a .tar.gz nor an S3 prefix ending in /",
                            "pass the training job's model.tar.gz (printed by python -m container.aws.launch), "
                            "or a prefix s3://bucket/model/ holding model.pt and model.json uncompressed", exit_code=2)
        if self.async_output_s3 and self.serverless_memory_mb:
            raise ShipError("--async-output and --serverless-memory exclude each other",
                            "pick one inference option", exit_code=2)
        if self.async_output_s3:
            check_s3_uri(self.async_output_s3, "--async-output")
        memory, concurrency = self.serverless_memory_mb, self.serverless_concurrency
        if memory is not None and (memory not in range(1024, 6145, 1024) or not 1 <= concurrency <= 200):
            raise ShipError("--serverless-memory must be 1024, 2048, ..., 6144 and --serverless-concurrency 1..200",
                            "pass e.g. --serverless-memory 3072 (the image serves within 3 GB)", exit_code=2)
        check_role_arn(self.role_arn)
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
        check_name(self.job_name, "--job-name")
        check_name(self.model_name, "--model-name")
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
