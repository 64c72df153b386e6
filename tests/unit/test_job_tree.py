"""An /opt/ml tree (root injected) read into a job spec, as the sagemaker-training toolkit reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from container.jobtree import JobTree
from train.errors import UserError
from train.job import JobSpec, TrainPaths

HYPERPARAMETERS = {"epochs": "3", "learning_rate": "0.002", "augment": "true", "model_family": "a.b:C",
                   "sagemaker_program": "ignored-by-our-config", "note": "not json"}
INPUTS = {"train": {"TrainingInputMode": "Pipe", "S3DistributionType": "ShardedByS3Key"},
          "validation": {"TrainingInputMode": "FastFile", "S3DistributionType": "FullyReplicated"},
          "test": {}}


def _tree(root: Path, checkpoint: dict | None = None) -> JobTree:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(HYPERPARAMETERS))
    (config / "inputdataconfig.json").write_text(json.dumps(INPUTS))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}))
    if checkpoint is not None:
        (config / "checkpointconfig.json").write_text(json.dumps(checkpoint))
    return JobTree(root)


def test_channels_modes_and_outputs_come_from_the_tree_under_its_root(tmp_path):
    spec = _tree(tmp_path).job_spec()
    assert spec.paths == TrainPaths(
        channels={name: tmp_path / "input" / "data" / name for name in ("train", "validation", "test")},
        model_dir=tmp_path / "model", output_data_dir=tmp_path / "output" / "data",
        checkpoint_dir=tmp_path / "checkpoints", sharded=frozenset({"train"}), pipe=frozenset({"train"}))
    assert (spec.hosts, spec.current_host) == (("algo-1", "algo-2"), "algo-2")


def test_checkpoint_local_path_comes_from_checkpointconfig(tmp_path):
    assert _tree(tmp_path, {"LocalPath": "/elsewhere/ckpt"}).job_spec().paths.checkpoint_dir == Path("/elsewhere/ckpt")


def test_hyperparameters_and_channels_read_as_the_toolkit_reads_them(tmp_path):
    spec = _tree(tmp_path).job_spec()
    script = ("import json; from sagemaker_training import environment as e; env = e.Environment(); "
              "print(json.dumps({'hps': env.hyperparameters, 'channels': env.channel_input_dirs, "
              "'model': env.model_dir, 'output': env.output_data_dir}))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, "SAGEMAKER_BASE_DIR": str(tmp_path)}).stdout
    toolkit = json.loads(out.strip().splitlines()[-1])
    ours = {k: v for k, v in spec.hyperparameters.items() if not k.startswith("sagemaker_")}
    assert ours == toolkit["hps"] and spec.hyperparameters["epochs"] == 3 and spec.hyperparameters["note"] == "not json"
    assert {k: str(v) for k, v in spec.paths.channels.items()} == toolkit["channels"]
    assert (str(spec.paths.model_dir), str(spec.paths.output_data_dir)) == (toolkit["model"], toolkit["output"])


def test_a_config_file_that_is_not_json_is_a_user_error_naming_it(tmp_path):
    tree = _tree(tmp_path)
    (tree.config_dir / "hyperparameters.json").write_text("{epochs: 3}")
    with pytest.raises(UserError, match=r"hyperparameters\.json is not valid JSON"):
        tree.job_spec()


def test_a_job_spec_travels_to_scale_out_processes_unchanged(tmp_path):
    spec = _tree(tmp_path).job_spec()
    assert JobSpec.read(spec.write(tmp_path / "job.json")) == spec
