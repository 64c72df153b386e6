"""SageMaker Python SDK v2 local mode: fit -> model.tar.gz -> deploy -> predict PNG and npy -> delete; transform.

Run by tests/container/test_sdk_local.py under the v2 venv. Prints ``RESULT {json}`` last.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import (
    ROLE,
    TINY,
    check_npy_answer,
    check_png_answer,
    parse_args,
    report,
    tar_members,
    transform_summary,
)
from sagemaker.estimator import Estimator
from sagemaker.local import LocalSession


def main() -> None:
    args = parse_args()
    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(args.work / "root")}}
    (args.work / "root").mkdir(parents=True, exist_ok=True)
    result: dict = {"sdk": "v2"}

    estimator = Estimator(image_uri=args.image, role=ROLE, instance_count=1, instance_type="local",
                          output_path=f"file://{args.work / 'output'}", hyperparameters=TINY,
                          sagemaker_session=session, base_job_name="byoc-sdk-v2")
    estimator.fit({"train": f"file://{args.train}"}, wait=True, logs=True)
    model_tar = Path(estimator.model_data.removeprefix("file://"))
    result["model_tar"] = str(model_tar)
    result["model_files"] = tar_members(model_tar)

    # wait=False skips the SDK's fixed 30 s sleep; deploy still polls /ping until the server is up.
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local", wait=False)
    try:
        body = predictor.predict(args.png.read_bytes(),
                                 initial_args={"ContentType": "image/png", "Accept": "application/json"})
        result["png_shape"] = check_png_answer(body)
        batch = args.npy.read_bytes()
        body = predictor.predict(batch, initial_args={"ContentType": "application/x-npy",
                                                      "Accept": "application/x-npy"})
        import io

        import numpy as np

        result["npy_shape"] = check_npy_answer(body, np.load(io.BytesIO(batch)).shape[0])
    finally:
        predictor.delete_endpoint()

    out = args.work / "transform-out"
    transformer = estimator.transformer(instance_count=1, instance_type="local", strategy="MultiRecord",
                                        assemble_with="Line", accept="application/jsonlines",
                                        output_path=f"file://{out}")
    # logs=False: fetching transform logs is a CloudWatch call even in local mode.
    transformer.transform(f"file://{args.jsonl_dir}", content_type="application/jsonlines", split_type="Line",
                          wait=True, logs=False)
    result.update(transform_summary(out))
    report(result)


if __name__ == "__main__":
    main()
