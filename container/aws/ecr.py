"""ECR steps of build_and_push.sh, so it needs boto3 but not the AWS CLI.

    python -m container.aws.ecr prepare REPOSITORY [--region R]   # prints account=, region=, repository_uri=
    python -m container.aws.ecr login-password [--region R]       # for `docker login --password-stdin`

``prepare`` checks the credentials (STS GetCallerIdentity), creates the repository if it is missing with
scan-on-push on (and turns scan-on-push on for an existing one), and prints ``key=value`` lines that the
script reads. Errors go to stderr as ``error:``/``fix:`` lines with a non-zero exit.
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import botocore.exceptions

from container.aws.common import ShipError, error_code, explain, make_session, run_cli


@dataclass(frozen=True)
class Repository:
    account: str
    region: str
    uri: str

    @property
    def registry(self) -> str:
        return self.uri.split("/", 1)[0]


def caller_account(sts: Any) -> str:
    try:
        return str(sts.get_caller_identity()["Account"])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise explain(exc, "checking the AWS credentials (sts:GetCallerIdentity)") from None


def ensure_repository(ecr: Any, name: str, log: Any = sys.stderr) -> str:
    """Create ``name`` with scan-on-push if missing; return its URI. Safe to run again."""
    try:
        repo = ecr.create_repository(
            repositoryName=name,
            imageScanningConfiguration={"scanOnPush": True},
            imageTagMutability="MUTABLE",  # `latest` moves with every push
        )["repository"]
        print(f"==> created ECR repository {name} (scan on push)", file=log)
        return str(repo["repositoryUri"])
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) != "RepositoryAlreadyExistsException":
            raise explain(exc, f"creating the ECR repository {name}") from None
    try:
        repo = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
            ecr.put_image_scanning_configuration(repositoryName=name,
                                                 imageScanningConfiguration={"scanOnPush": True})
            print(f"==> turned scan-on-push on for {name}", file=log)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise explain(exc, f"reading the ECR repository {name}") from None
    print(f"==> ECR repository {name} already exists", file=log)
    return str(repo["repositoryUri"])


def prepare(name: str, region: str | None) -> Repository:
    session = make_session(region)
    account = caller_account(session.client("sts"))
    uri = ensure_repository(session.client("ecr"), name)
    return Repository(account=account, region=str(session.region_name), uri=uri)


def login_password(region: str | None) -> str:
    session = make_session(region)
    try:
        data = session.client("ecr").get_authorization_token()["authorizationData"][0]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        raise explain(exc, "getting an ECR login token (ecr:GetAuthorizationToken)") from None
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    if user != "AWS" or not password:
        raise ShipError("ECR returned an authorization token of an unexpected form",
                        "retry; if it persists, log in with `aws ecr get-login-password | docker login ...`")
    return password


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m container.aws.ecr", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="check credentials, create the repository if missing, print its URI")
    p.add_argument("repository")
    p.add_argument("--region")
    p = sub.add_parser("login-password", help="print an ECR password for docker login --password-stdin")
    p.add_argument("--region")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        repo = prepare(args.repository, args.region)
        print(f"account={repo.account}\nregion={repo.region}\nrepository_uri={repo.uri}\nregistry={repo.registry}")
    else:
        print(login_password(args.region))
    return 0


if __name__ == "__main__":
    run_cli(main)
