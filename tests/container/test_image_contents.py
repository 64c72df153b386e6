"""What the built image carries: everything our code imports is there, and trimming kept it small.

The Dockerfile deletes parts of torch and its dependencies that train/serve never load (C++ tests,
headers, triton). These tests prove that nothing we import went missing with them, by importing every
module of the image's code, and every library module our code imports lazily, inside the real image.
"""

from __future__ import annotations

import json

import docker
import pytest

# Imported lazily by our code or by the libraries it drives (torchrun, the toolkit, gunicorn's workers,
# Pillow's decoders): an eager `import` of our modules alone would not reach them.
LAZY_IMPORTS = (
    "sagemaker_training.trainer",
    "sagemaker_training.environment",
    "torch.distributed.run",
    "torch.distributed.elastic.multiprocessing",
    "torch.utils.data",
    "gunicorn.app.base",
    "gunicorn.workers.gthread",
    "prometheus_client.multiprocess",
    "PIL.PngImagePlugin",
    "PIL.JpegImagePlugin",
    "png",
)

IMPORT_EVERYTHING = f"""
import importlib, json, pkgutil, sys, torch
failed = {{}}
names = list({LAZY_IMPORTS!r})
for package in ("model", "train", "serve", "container"):
    root = importlib.import_module(package)
    names.append(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not info.name.endswith("__main__"):  # importing a __main__ would run it
            names.append(info.name)
for name in names:
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed[name] = f"{{type(exc).__name__}}: {{exc}}"
# A backward pass and an optimizer step pull in parts of torch (sympy among them) that import alone does not.
net = torch.nn.Conv2d(3, 3, 3)
torch.optim.AdamW(net.parameters()).zero_grad()
net(torch.randn(1, 3, 8, 8)).sum().backward()
# The training toolkit's only AWS calls (S3, with STS for credentials) still find their API models.
import boto3
for service in ("s3", "sts"):
    boto3.client(service, region_name="us-east-1")
print(json.dumps({{"imported": len(names), "failed": failed}}))
"""


def _run_python(client: docker.DockerClient, image: str, code: str) -> str:
    out = client.containers.run(image, ["python", "-c", code], entrypoint=[], remove=True, network_mode="none")
    return out.decode().strip().splitlines()[-1]


def test_every_module_the_image_runs_imports_inside_the_image(docker_client, image) -> None:
    result = json.loads(_run_python(docker_client, image, IMPORT_EVERYTHING))
    assert result["failed"] == {}
    assert result["imported"] > 40  # our packages were really walked


def test_the_cpu_image_stays_under_900_mb(docker_client, image) -> None:
    img = docker_client.images.get(image)
    if img.labels.get("byoc.variant") != "cpu":
        pytest.skip(f"{image} is not the CPU variant")
    assert img.attrs["Size"] < 900e6, f"{image} is {img.attrs['Size'] / 1e6:.0f} MB"
