"""Deploy, call and tear down a SageMaker endpoint for our image, from a laptop (boto3 only, no torch).

    python -m container.aws.deploy deploy --name normals --image URI --model-data s3://.../model.tar.gz --role ARN
    python -m container.aws.deploy invoke --name normals --file photo.png --output normals.png --accept image/png
    python -m container.aws.deploy transform --model-name normals --input s3://b/in/ --output s3://b/out/ --wait
    python -m container.aws.deploy delete --name normals

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
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from container.aws.common import ShipError, default_job_name, make_session, parse_key_values, run_cli
from container.aws.endpoint_ops import delete, deploy, invoke, start_transform
from container.aws.endpoint_spec import Deployment, Scaling, Transform

__all__ = ["CONTENT_TYPES", "Deployment", "Scaling", "Transform", "build_parser", "delete", "deploy", "invoke", "main",
           "start_transform"]

#: File suffix -> request content type for `invoke` (the server's codecs accept these).
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".npy": "application/x-npy",
                 ".json": "application/json", ".jsonl": "application/jsonlines"}



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container.aws.deploy", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)")
    parser.add_argument("--poll-seconds", type=float, default=30, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_deploy_arguments(sub.add_parser("deploy", help="create model, endpoint config, endpoint; wait; set up "
                                                        "auto scaling"))
    p = sub.add_parser("invoke", help="send a file to the endpoint and save the response")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--file", required=True, type=Path)
    p.add_argument("--content-type", help="default: from the file suffix (.png .jpg .npy .json .jsonl)")
    p.add_argument("--accept", default="application/json", help="response type (default: application/json)")
    p.add_argument("--output", type=Path, help="where to save the response (default: stdout)")
    _add_transform_arguments(sub.add_parser("transform", help="start a batch transform job (JSON Lines by "
                                                              "default)"))
    p = sub.add_parser("delete", help="remove auto scaling, endpoint, endpoint config, model and monitoring")
    p.add_argument("--name", required=True)
    return parser


def _add_deploy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", required=True, help="name of the model, the endpoint config and the endpoint")
    p.add_argument("--image", required=True, help="image URI (the last line of ./build_and_push.sh)")
    p.add_argument("--model-data", required=True,
                   help="s3://.../model.tar.gz (printed by python -m container.aws.launch), or an S3 prefix "
                        "ending in / holding model.pt and model.json uncompressed")
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


def _add_transform_arguments(p: argparse.ArgumentParser) -> None:
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


def _deploy_command(args: argparse.Namespace, session: Any) -> int:
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
    print(f"==> endpoint {d.name} is {desc.get('EndpointStatus')}; try: python -m container.aws.deploy invoke "
          f"--name {d.name} --file image.png", file=sys.stderr)
    print(desc.get("EndpointArn", d.name))
    return 0


def _invoke_command(args: argparse.Namespace, session: Any) -> int:
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


def _transform_command(args: argparse.Namespace, session: Any) -> int:
    t = Transform(job_name=args.job_name or default_job_name(f"{args.model_name}-transform")[:63],
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


def _delete_command(args: argparse.Namespace, session: Any) -> int:
    session = session or make_session(args.region)
    delete(session, args.name, interval_s=args.poll_seconds)
    from container.aws.monitor import MonitorPlan, remove  # the endpoint's alarms and dashboard go with it

    remove(session, MonitorPlan(args.name))
    return 0


_COMMANDS = {"deploy": _deploy_command, "invoke": _invoke_command, "transform": _transform_command,
             "delete": _delete_command}


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command](args, session)


if __name__ == "__main__":
    run_cli(main)
