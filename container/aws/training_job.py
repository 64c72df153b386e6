"""A SageMaker training job as one frozen value: validated on construction (the same validators as every CLI),
with the exact CreateTrainingJob parameters from :meth:`TrainingJob.request`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from container.aws.common import ShipError, tag_list
from container.aws.validate import check_name, check_role_arn, check_s3_uri

CHANNELS = ("train", "validation", "test")
CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
MAX_RUNTIME_LIMIT_S = 28 * 24 * 3600  # the API's ceiling for MaxRuntimeInSeconds


@dataclass(frozen=True)
class TrainingJob:
    """Everything CreateTrainingJob needs; :meth:`request` builds the exact API parameters."""

    name: str
    image: str
    role_arn: str
    output_path: str
    hyperparameters: Mapping[str, str]
    channels: Mapping[str, str]
    metric_definitions: Sequence[Mapping[str, str]]
    instance_type: str = "ml.g5.xlarge"
    instance_count: int = 1
    volume_gb: int = 50
    max_runtime_s: int = 24 * 3600
    spot: bool = False
    max_wait_s: int | None = None
    checkpoint_s3: str | None = None
    network_isolation: bool = False
    input_mode: str = "File"
    train_distribution: str = "FullyReplicated"
    environment: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    #: Derive a checkpoint URI for spot jobs. Tuning turns it off: its training jobs would share one path.
    auto_checkpoint: bool = True

    def __post_init__(self) -> None:
        check_name(self.name, "job name")
        check_role_arn(self.role_arn)
        check_s3_uri(self.output_path, "--output-path")
        for channel, uri in self.channels.items():
            check_s3_uri(uri, f"--{channel}")
        if self.checkpoint_s3:
            check_s3_uri(self.checkpoint_s3, "--checkpoint-s3")
        if self.instance_count < 1 or self.volume_gb < 1:
            raise ShipError("--instance-count and --volume-size must be at least 1", "pass positive numbers",
                            exit_code=2)
        if not 1 <= self.max_runtime_s <= MAX_RUNTIME_LIMIT_S:
            raise ShipError(f"--max-runtime {self.max_runtime_s} is outside 1..{MAX_RUNTIME_LIMIT_S} s",
                            "pick a runtime up to 28 days", exit_code=2)
        if self.spot and self.effective_max_wait_s < self.max_runtime_s:
            raise ShipError(
                f"--max-wait {self.max_wait_s} s is shorter than --max-runtime {self.max_runtime_s} s; SageMaker "
                "requires MaxWaitTimeInSeconds >= MaxRuntimeInSeconds for spot jobs",
                f"raise --max-wait to at least {self.max_runtime_s} (it covers waiting for capacity too)",
                exit_code=2)
        if self.max_wait_s is not None and not self.spot:
            raise ShipError("--max-wait only applies to managed spot training", "add --spot or drop --max-wait",
                            exit_code=2)
        if "train" not in self.channels and int(self.hyperparameters.get("synthetic_samples", "0") or 0) == 0:
            raise ShipError("no --train channel and no synthetic_samples hyperparameter: the job would have no data",
                            "pass --train s3://bucket/prefix (or --hp synthetic_samples=N for a demo run)",
                            exit_code=2)

    @property
    def effective_max_wait_s(self) -> int:
        # Default: as long again as the run itself to wait for spot capacity, within the API ceiling.
        if self.max_wait_s is not None:
            return self.max_wait_s
        return min(2 * self.max_runtime_s, MAX_RUNTIME_LIMIT_S)

    @property
    def effective_checkpoint_s3(self) -> str | None:
        # Spot without checkpoints restarts from scratch after every interruption: always give it a place.
        if self.checkpoint_s3:
            return self.checkpoint_s3
        if self.spot and self.auto_checkpoint:
            return f"{self.output_path.rstrip('/')}/{self.name}/checkpoints"
        return None

    @property
    def model_artifact_uri(self) -> str:
        return f"{self.output_path.rstrip('/')}/{self.name}/output/model.tar.gz"

    def input_data_config(self) -> list[dict[str, Any]]:
        config = []
        for channel in CHANNELS:
            if channel not in self.channels:
                continue
            distribution = self.train_distribution if channel == "train" else "FullyReplicated"
            config.append({
                "ChannelName": channel,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.channels[channel],
                                                "S3DataDistributionType": distribution}},
                "CompressionType": "None",
                "InputMode": self.input_mode,
            })
        return config

    def definition(self) -> dict[str, Any]:
        """The parts a tuning job's TrainingJobDefinition shares with CreateTrainingJob."""
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": self.max_runtime_s}
        if self.spot:
            stopping["MaxWaitTimeInSeconds"] = self.effective_max_wait_s
        spec: dict[str, Any] = {
            "AlgorithmSpecification": {
                "TrainingImage": self.image,
                "TrainingInputMode": self.input_mode,
                "MetricDefinitions": [dict(d) for d in self.metric_definitions],
            },
            "RoleArn": self.role_arn,
            "InputDataConfig": self.input_data_config(),
            "OutputDataConfig": {"S3OutputPath": self.output_path},
            "ResourceConfig": {"InstanceType": self.instance_type, "InstanceCount": self.instance_count,
                               "VolumeSizeInGB": self.volume_gb},
            "StoppingCondition": stopping,
            "EnableNetworkIsolation": self.network_isolation,
            "EnableManagedSpotTraining": self.spot,
        }
        if self.effective_checkpoint_s3:
            spec["CheckpointConfig"] = {"S3Uri": self.effective_checkpoint_s3, "LocalPath": CHECKPOINT_LOCAL_PATH}
        if not spec["InputDataConfig"]:
            del spec["InputDataConfig"]
        return spec

    def request(self) -> dict[str, Any]:
        """Keyword arguments of sagemaker.create_training_job."""
        req = {"TrainingJobName": self.name, "HyperParameters": dict(self.hyperparameters), **self.definition()}
        if self.environment:
            req["Environment"] = dict(self.environment)
        if self.tags:
            req["Tags"] = tag_list(self.tags)
        return req

