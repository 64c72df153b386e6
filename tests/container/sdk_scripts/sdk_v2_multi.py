"""SageMaker Python SDK v2 local mode with instance_count=2: two containers train one job together.

Run by tests/container/test_sdk_multi.py under the v2 venv. Prints the compose log (service-name prefixed
lines, one service per host) and ``RESULT {json}`` last.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import ROLE, TINY, report, tar_members
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--image", required=True)
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path, help="train channel directory")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(args.work / "root")}}
    (args.work / "root").mkdir(parents=True, exist_ok=True)
    estimator = Estimator(image_uri=args.image, role=ROLE, instance_count=2, instance_type="local",
                          output_path=f"file://{args.work / 'output'}",
                          hyperparameters={**TINY, "epochs": "2", "checkpoint_steps": "0"},
                          environment={"BYOC_PEER_TIMEOUT_S": "120"},
                          sagemaker_session=session, base_job_name="byoc-sdk-v2-multi")
    estimator.fit({"train": f"file://{args.train}"}, wait=True, logs=True)
    model_tar = Path(estimator.model_data.removeprefix("file://"))
    output_tar = model_tar.with_name("output.tar.gz")
    report({"sdk": "v2", "model_files": tar_members(model_tar),
            "output_files": tar_members(output_tar) if output_tar.exists() else []})


if __name__ == "__main__":
    main()
