"""SageMaker Python SDK v3 local mode: ModelTrainer -> model.tar.gz -> local endpoint through the local session's
low-level clients -> predict PNG and npy -> delete; then a local batch transform over JSON Lines.

Run by tests/container/test_sdk_local.py under the v3 venv. Prints ``RESULT {json}`` last.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import numpy as np
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
from sagemaker.core.local.local_session import LocalSession
from sagemaker.train.configs import Compute, InputData
from sagemaker.train.model_trainer import Mode, ModelTrainer


def main() -> None:
    args = parse_args()
    root = args.work / "root"
    root.mkdir(parents=True, exist_ok=True)
    result: dict = {"sdk": "v3"}

    trainer = ModelTrainer(training_mode=Mode.LOCAL_CONTAINER, training_image=args.image, role=ROLE,
                           compute=Compute(instance_type="local", instance_count=1), hyperparameters=TINY,
                           local_container_root=str(root), base_job_name="byoc-sdk-v3")
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=str(args.train))], wait=True)
    model_tar = root / "compressed_artifacts" / "model.tar.gz"
    result["model_tar"] = str(model_tar)
    result["model_files"] = tar_members(model_tar)

    session = LocalSession()
    sm, runtime = session.sagemaker_client, session.sagemaker_runtime_client
    name = f"byoc-sdk-v3-{int(time.time())}"
    sm.create_model(ModelName=name, PrimaryContainer={"Image": args.image, "ModelDataUrl": f"file://{model_tar}",
                                                     "Environment": {}})  # the v3 local client requires the key
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "local"}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)  # returns once /ping answers 200
    try:
        resp = runtime.invoke_endpoint(EndpointName=name, Body=args.png.read_bytes(), ContentType="image/png",
                                       Accept="application/json")
        result["png_shape"] = check_png_answer(resp["Body"].read())
        batch = args.npy.read_bytes()
        resp = runtime.invoke_endpoint(EndpointName=name, Body=batch, ContentType="application/x-npy",
                                       Accept="application/x-npy")
        result["npy_shape"] = check_npy_answer(resp["Body"].read(), np.load(io.BytesIO(batch)).shape[0])
    finally:
        sm.delete_endpoint(EndpointName=name)
        sm.delete_endpoint_config(EndpointConfigName=name)

    out = args.work / "transform-out"
    sm.create_transform_job(
        TransformJobName=f"{name}-batch", ModelName=name, BatchStrategy="MultiRecord", MaxPayloadInMB=6,
        TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                        "S3Uri": f"file://{args.jsonl_dir}"}},
                        "ContentType": "application/jsonlines", "SplitType": "Line"},
        TransformOutput={"S3OutputPath": f"file://{out}", "Accept": "application/jsonlines", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "local", "InstanceCount": 1})
    result["transform_status"] = sm.describe_transform_job(TransformJobName=f"{name}-batch")["TransformJobStatus"]
    sm.delete_model(ModelName=name)
    result.update(transform_summary(out))
    report(result)


if __name__ == "__main__":
    main()
