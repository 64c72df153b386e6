"""The endpoint's lifecycle against AWS: create (idempotently), delete, invoke, and batch transform jobs."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import botocore.exceptions

from container.aws.common import ShipError, error_code, error_message, explain, is_not_found, poll
from container.aws.endpoint_spec import SCALABLE_DIMENSION, VARIANT, Deployment, Transform


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
                        f"read CloudWatch /aws/sagemaker/Endpoints/{d.name}; then "
                        f"`python -m container.aws.deploy delete --name {d.name}` and deploy again")
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

