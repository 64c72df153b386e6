"""Shared fixtures for tests that build and run the real image.

The image is built once per session from the working tree, unless BYOC_IMAGE names an image that is
already built (`.ci/run` builds it first, so the build log is not hidden inside a test). Docker must be
there: without an engine these tests fail loudly instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import docker
import pytest

from tests.container.mltree import TINY_HYPERPARAMETERS, MLTree, finish, make_tree, start

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.container)


@pytest.fixture(scope="session")
def docker_client() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.fail(f"container tests need a Docker engine ({exc}); start one with "
                    "container/scripts/ensure-docker.sh or deselect them with -m 'not container'")
    return client


@pytest.fixture(scope="session")
def image(docker_client) -> str:
    tag = os.environ.get("BYOC_IMAGE")
    if tag:
        docker_client.images.get(tag)  # fail early if it does not exist
        return tag
    tag = "byoc:pytest"
    subprocess.run(["bash", str(REPO / "container/scripts/build-image.sh"), tag], check=True, cwd=REPO)
    return tag


@pytest.fixture(scope="session")
def synthetic_channel(tmp_path_factory) -> Path:
    """A small dataset in the documented format, written on the host."""
    from model.normals.synthetic import write_dataset

    root = tmp_path_factory.mktemp("synthetic") / "train"
    write_dataset(root, count=12, size=40, seed=7)
    return root


@pytest.fixture(scope="session")
def trained_tree(docker_client, image, synthetic_channel, tmp_path_factory) -> MLTree:
    """An /opt/ml tree after a real `docker run IMAGE train` (tiny model, two epochs)."""
    tree = make_tree(tmp_path_factory.mktemp("trained") / "ml", TINY_HYPERPARAMETERS, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, image, tree))
    assert code == 0, logs
    return tree


@pytest.fixture(scope="session")
def trained_model_dir(trained_tree) -> Path:
    return trained_tree.model_dir


@pytest.fixture(scope="session")
def default_unet_dir(tmp_path_factory) -> Path:
    """An untrained U-Net of the default size: slow enough on CPU (~0.1-0.5 s per 256x256 image) to saturate
    workers, and as large as a served default model."""
    from model.artifact import save_model_dir
    from model.normals.config import UNetConfig
    from model.normals.family import SurfaceNormals

    path = tmp_path_factory.mktemp("default-unet")
    family, config = SurfaceNormals(), UNetConfig()
    save_model_dir(path, family, config, family.build(config), family.preprocessing(config, 256))
    return path
