"""What every shipping CLI needs: a checked boto3 session, errors that say what/why/fix, polling, logs.

Only the standard library and boto3/botocore. boto3 honours ``AWS_ENDPOINT_URL`` (and per-service
``AWS_ENDPOINT_URL_<SERVICE>``), which is how the tests point everything at a moto server.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

import boto3
import botocore.exceptions

# Codes AWS uses for "you may not do this"; all of them mean the same fix: grant the IAM permission.
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnrecognizedClientException",
           "InvalidClientTokenId", "ExpiredToken", "ExpiredTokenException", "SignatureDoesNotMatch"}
IAM_POLICY_HINT = "container/aws/iam-policy.json lists every permission these tools use"


class ShipError(Exception):
    """A failure a person can fix. ``what`` happened (and why), ``fix`` says how to fix it."""

    def __init__(self, what: str, fix: str, exit_code: int = 1) -> None:
        super().__init__(f"{what}. Fix: {fix}")
        self.what = what
        self.fix = fix
        self.exit_code = exit_code


def default_job_name(prefix: str = "byoc-normals", stamp: str = "%Y%m%d-%H%M%S") -> str:
    """``prefix`` and the UTC time: a job name that does not collide with earlier runs."""
    return f"{prefix}-{time.strftime(stamp, time.gmtime())}"


def make_session(region: str | None = None) -> boto3.Session:
    """A boto3 session with a region and credentials, or a ShipError saying how to provide them.

    Region precedence: ``region`` (a --region flag) > AWS_REGION / AWS_DEFAULT_REGION > the AWS config file.
    """
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if not session.region_name:
        raise ShipError(
            "no AWS region is configured (no --region flag, AWS_REGION/AWS_DEFAULT_REGION, or region in "
            "~/.aws/config)",
            "pass --region us-east-1 (or your region), export AWS_REGION=..., or run `aws configure set region ...`",
        )
    if session.get_credentials() is None:
        raise ShipError(
            "no AWS credentials found (environment, ~/.aws/credentials, SSO profile or instance role)",
            "run `aws configure` or `aws sso login --profile NAME` and export AWS_PROFILE=NAME, or export "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return session


def error_code(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def error_message(exc: BaseException) -> str:
    if isinstance(exc, botocore.exceptions.ClientError):
        return str(exc.response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)


def is_already_exists(exc: BaseException) -> bool:
    """True for the ways AWS services say "that name is taken" (SageMaker uses a ValidationException)."""
    code, message = error_code(exc), error_message(exc).lower()
    if code in ("ResourceInUse", "ResourceInUseException", "RepositoryAlreadyExistsException",
                "ResourceAlreadyExistsException", "ConflictException"):
        return True
    return code == "ValidationException" and ("already exist" in message or "existing" in message)


def is_not_found(exc: BaseException) -> bool:
    code, message = error_code(exc), error_message(exc).lower()
    if code in ("ResourceNotFound", "ResourceNotFoundException", "RepositoryNotFoundException", "ObjectNotFound",
                "NoSuchEntity", "ObjectNotFoundException"):
        return True
    return code == "ValidationException" and ("could not find" in message or "does not exist" in message
                                              or "not found" in message)


def explain(exc: BaseException, action: str) -> ShipError:
    """Turn a botocore failure during ``action`` into a ShipError with a fix."""
    if isinstance(exc, ShipError):
        return exc
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return ShipError(f"{action} failed: no usable AWS credentials ({exc})",
                         "run `aws configure` / `aws sso login`, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, botocore.exceptions.NoRegionError):
        return ShipError(f"{action} failed: no AWS region configured", "pass --region or export AWS_REGION")
    if isinstance(exc, botocore.exceptions.EndpointConnectionError):
        return ShipError(f"{action} failed: cannot reach the AWS endpoint ({exc})",
                         "check the network/proxy, the region name, and AWS_ENDPOINT_URL if you set one")
    if isinstance(exc, botocore.exceptions.ParamValidationError):
        return ShipError(f"{action} failed: the request is malformed ({exc})",
                         "check the flag values named above (see --help)")
    code = error_code(exc)
    if code in _DENIED:
        return ShipError(f"{action} was denied: {error_message(exc)}",
                         f"use credentials whose IAM policy allows it ({IAM_POLICY_HINT}); check the account and "
                         "that the credentials have not expired")
    if code == "ResourceLimitExceeded":
        return ShipError(f"{action} failed: {error_message(exc)}",
                         "request a quota increase (Service Quotas -> SageMaker) or pick another instance type")
    return ShipError(f"{action} failed: {code or type(exc).__name__}: {error_message(exc)}",
                     "read the AWS message above; rerun with --help for the flags")


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a CLI ``main``; print ShipErrors and user errors as ``error:``/``fix:`` lines, never a traceback."""
    # Imported here so this module stays importable without the training package on sys.path.
    from train.errors import UserError

    try:
        code = main(argv)
    except ShipError as exc:
        print(f"error: {exc.what}\nfix: {exc.fix}", file=sys.stderr)
        code = exc.exit_code
    except UserError as exc:
        print(f"error: {exc.what}\nfix: {exc.fix}", file=sys.stderr)
        code = 2
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        err = explain(exc, "the AWS call")
        print(f"error: {err.what}\nfix: {err.fix}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print("interrupted; the AWS resources keep running (see the delete/stop commands in the README)",
              file=sys.stderr)
        code = 130
    sys.exit(code)


def parse_key_values(items: Iterable[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a ShipError names the bad item."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ShipError(f"{flag} {item!r} is not KEY=VALUE", f"write it as {flag} name=value", exit_code=2)
        out[key.strip()] = value
    return out


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def poll(describe: Callable[[], Mapping[str, Any]], status_key: str, done: Iterable[str], *, interval_s: float = 15,
         timeout_s: float | None = None, on_poll: Callable[[Mapping[str, Any]], None] | None = None,
         sleep: Callable[[float], None] = time.sleep) -> Mapping[str, Any]:
    """Call ``describe`` until ``status_key`` reaches one of ``done``; return the last description."""
    terminal = set(done)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        desc = describe()
        if on_poll is not None:
            on_poll(desc)
        if desc.get(status_key) in terminal:
            return desc
        if deadline is not None and time.monotonic() > deadline:
            raise ShipError(f"gave up waiting after {timeout_s:.0f} s; status is still {desc.get(status_key)}",
                            "it keeps going in AWS: check it in the console or rerun with a longer --timeout")
        sleep(interval_s)


@dataclass
class LogFollower:
    """Yields new CloudWatch log lines of every stream under ``prefix`` (a training job's ``NAME/algo-1-...``).

    Call :meth:`new_lines` repeatedly; it remembers where each stream stopped. A missing group or stream is
    not an error: SageMaker creates them only once the container starts.
    """

    logs: Any
    group: str
    prefix: str
    _tokens: dict[str, str] = field(default_factory=dict)

    def new_lines(self) -> Iterator[tuple[str, str]]:
        try:
            streams = self.logs.describe_log_streams(logGroupName=self.group, logStreamNamePrefix=self.prefix)
        except botocore.exceptions.ClientError as exc:
            if is_not_found(exc):
                return
            raise
        for stream in sorted(s["logStreamName"] for s in streams.get("logStreams", [])):
            while True:
                kwargs = {"logGroupName": self.group, "logStreamName": stream, "startFromHead": True}
                if stream in self._tokens:
                    kwargs["nextToken"] = self._tokens[stream]
                page = self.logs.get_log_events(**kwargs)
                events = page.get("events", [])
                token = page.get("nextForwardToken")
                if token:
                    self._tokens[stream] = token
                for event in events:
                    yield stream, event.get("message", "")
                # The same token back means "no more for now".
                if not events or token is None or token == kwargs.get("nextToken"):
                    break
