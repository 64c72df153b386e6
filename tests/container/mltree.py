"""Build SageMaker-style /opt/ml trees on the host and run the image against them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

#: Small enough for a 2-core CI machine: a few seconds per training run.
TINY_HYPERPARAMETERS = {
    "epochs": "2",
    "batch_size": "4",
    "image_size": "32",
    "base_channels": "4",
    "depth": "2",
    "data_workers": "0",
    "panels": "2",
    "log_every_steps": "2",
}


@dataclass
class MLTree:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def output_data(self) -> Path:
        return self.root / "output" / "data"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"


def make_tree(root: Path, hyperparameters: dict[str, Any], channels: dict[str, Path | None],
              resource: dict[str, Any] | None = None) -> MLTree:
    """An /opt/ml tree; ``channels`` maps name -> source dir (copied) or None (declared, left empty)."""
    import shutil

    config = root / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {name: {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
         for name in channels}))
    (config / "resourceconfig.json").write_text(json.dumps(
        resource or {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    for name, source in channels.items():
        target = root / "input" / "data" / name
        if source is None:
            target.mkdir(parents=True, exist_ok=True)
        else:
            shutil.copytree(source, target)
    for sub in ("model", "output/data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return MLTree(root)


def start(client: docker.DockerClient, image: str, tree: MLTree, command: str | None = "train",
          **kwargs: Any) -> Container:
    return client.containers.run(
        image,
        command,
        detach=True,
        volumes={str(tree.root): {"bind": "/opt/ml", "mode": "rw"}},
        **kwargs,
    )


def finish(container: Container, timeout: float = 600) -> tuple[int, str]:
    """Wait for the container to exit; (exit code, logs). Removes the container."""
    try:
        result = container.wait(timeout=timeout)
        return int(result["StatusCode"]), container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
