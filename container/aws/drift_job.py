"""The `monitor` job of the image as a SageMaker Processing job over an endpoint's data-capture prefix.

The container runs ``python -m container monitor`` (the image's ENTRYPOINT with ``ContainerArguments``) with
its default paths: the capture prefix mapped to /opt/ml/processing/input/capture, the model's model.tar.gz
(which holds drift_baseline.json) to /opt/ml/processing/input/baseline, and /opt/ml/processing/output
uploaded to ``output_s3`` at the end (drift_report.json and drift_report.png).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

from container.aws.common import ShipError, default_job_name, explain, poll
from container.aws.validate import check_s3_uri

PROCESSING = "/opt/ml/processing"


def _s3_input(name: str, uri: str, local: str) -> dict[str, Any]:
    return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                           "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}


@dataclass(frozen=True)
class DriftJob:
    endpoint: str
    image: str
    role_arn: str
    capture_s3: str
    model_data: str
    output_s3: str
    instance_type: str = "ml.m5.large"
    max_runtime_s: int = 3600
    job_name: str = ""

    def __post_init__(self) -> None:
        for flag, uri in (("--capture", self.capture_s3), ("--model-data", self.model_data),
                          ("--output", self.output_s3)):
            check_s3_uri(uri, flag)

    @property
    def name(self) -> str:
        return self.job_name or default_job_name(f"{self.endpoint}-drift")[:63]

    def request(self, name: str) -> dict[str, Any]:
        return {
            "ProcessingJobName": name,
            "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": self.instance_type,
                                                      "VolumeSizeInGB": 30}},
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_runtime_s},
            "AppSpecification": {"ImageUri": self.image, "ContainerArguments": ["monitor"]},
            "RoleArn": self.role_arn,
            "ProcessingInputs": [_s3_input("capture", self.capture_s3, f"{PROCESSING}/input/capture"),
                                 _s3_input("baseline", self.model_data, f"{PROCESSING}/input/baseline")],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
                "S3Uri": self.output_s3, "LocalPath": f"{PROCESSING}/output", "S3UploadMode": "EndOfJob"}}]},
        }


def start(session: Any, job: DriftJob, *, wait: bool, interval_s: float = 30,
          log: TextIO | None = None) -> Mapping[str, Any]:
    sm = session.client("sagemaker")
    name = job.name
    try:
        sm.create_processing_job(**job.request(name))
    except Exception as exc:
        raise explain(exc, f"starting processing job {name}") from exc
    if log is not None:
        print(f"==> processing job {name} started; report goes to {job.output_s3}", file=log)
    desc = sm.describe_processing_job(ProcessingJobName=name)
    if wait:
        desc = poll(lambda: sm.describe_processing_job(ProcessingJobName=name), "ProcessingJobStatus",
                    ("Completed", "Failed", "Stopped"), interval_s=interval_s)
        if desc.get("ProcessingJobStatus") != "Completed":
            raise ShipError(f"processing job {name} ended {desc.get('ProcessingJobStatus')}: "
                            f"{desc.get('FailureReason', 'no reason given')}",
                            f"read CloudWatch /aws/sagemaker/ProcessingJobs, stream {name}/...")
    return desc
