"""The one set of flag validators every control-plane CLI uses (launch, tune, deploy, monitor, drift jobs).

Each returns its argument when valid and otherwise raises a usage ShipError (exit code 2) naming the flag,
what is wrong and how to write it. The rules are AWS's own, so a bad value fails here in a second instead
of in the API call after other resources were already created.
"""

from __future__ import annotations

import re

from container.aws.common import ShipError

# SageMaker resource names (jobs, models, endpoints, configs): letters, digits and single or repeated
# hyphens, starting and ending with a letter or digit.
_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,%d}"
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/\S+")
# General-purpose bucket names: 3-63 characters of lowercase letters, digits, dots and hyphens, beginning and
# ending with a letter or digit, no two adjacent dots, not an IP address, none of the reserved prefixes and
# suffixes AWS lists in its bucket naming rules.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_name(name: str, flag: str, max_length: int = 63) -> str:
    """A SageMaker resource name of 1..``max_length`` characters (63 for most, 32 for tuning jobs)."""
    if not re.fullmatch(_NAME % (max_length - 1), name):
        raise ShipError(f"{flag} {name!r} is not a valid SageMaker name",
                        f"use 1-{max_length} letters, digits and hyphens, starting with a letter or digit",
                        exit_code=2)
    return name


def check_role_arn(arn: str, flag: str = "--role") -> str:
    if not _ROLE_ARN.fullmatch(arn):
        raise ShipError(f"{flag} {arn!r} is not an IAM role ARN",
                        "pass the SageMaker execution role, arn:aws:iam::ACCOUNT:role/NAME (see the README)",
                        exit_code=2)
    return arn


def bucket_problem(bucket: str) -> str | None:
    """Why ``bucket`` breaks AWS's bucket naming rules, or None when it follows them."""
    if not _BUCKET.fullmatch(bucket):
        return "a bucket name is 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a " \
               "letter or digit"
    if ".." in bucket:
        return "a bucket name has no two adjacent dots"
    if _IP_ADDRESS.fullmatch(bucket):
        return "a bucket name is not an IP address"
    if bucket.startswith(_RESERVED_PREFIXES) or bucket.endswith(_RESERVED_SUFFIXES):
        return "the bucket name uses a prefix or suffix AWS reserves"
    return None


def check_s3_uri(uri: str, flag: str) -> str:
    """``uri`` if it is ``s3://bucket`` or ``s3://bucket/key...`` with a valid bucket name."""
    bucket = uri[len("s3://"):].partition("/")[0] if uri.startswith("s3://") else ""
    problem = bucket_problem(bucket) if bucket else "it does not start with s3://BUCKET"
    if problem:
        raise ShipError(f"{flag} {uri!r} is not an S3 URI ({problem})", f"write it as {flag} s3://bucket/prefix",
                        exit_code=2)
    return uri
