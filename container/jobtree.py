"""The /opt/ml tree of a training job, with its root injected (tests build trees anywhere).

SageMaker writes ``input/config/*.json`` and the channels before the container starts; we read them here
into a :class:`train.job.JobSpec` and a resource config, with the sagemaker-training toolkit's reading rules
(hyperparameter values JSON-decoded when they are JSON, else kept as strings; one directory per channel of
inputdataconfig.json) so a tree means the same to both. The outcome files live here too.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.errors import UserError
from train.job import JobSpec, TrainPaths

#: SageMaker shows this many characters of the failure file as FailureReason.
FAILURE_LIMIT = 1024
REQUIRED = {
    "hyperparameters.json": '{"epochs": "10"}',
    "inputdataconfig.json": '{"train": {"TrainingInputMode": "File"}}',
    "resourceconfig.json": '{"current_host": "algo-1", "hosts": ["algo-1"]}',
}


def _decode(value: Any) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


@dataclass(frozen=True)
class JobTree:
    root: Path

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def failure(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def success(self) -> Path:
        return self.root / "output" / "success"

    def missing_config(self) -> list[str]:
        return [name for name in REQUIRED if not (self.config_dir / name).is_file()]

    def _json(self, name: str) -> Any:
        path = self.config_dir / name
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise UserError(f"{path} is not valid JSON ({exc})", f"write it like {REQUIRED.get(name, '{}')}") from None

    def resource_config(self) -> dict[str, Any]:
        return self._json("resourceconfig.json")

    def checkpoint_dir(self) -> Path:
        if (self.config_dir / "checkpointconfig.json").is_file():
            local = self._json("checkpointconfig.json").get("LocalPath")
            if local:
                return Path(local)
        return self.root / "checkpoints"

    def job_spec(self, resource: dict[str, Any] | None = None) -> JobSpec:
        """Hyperparameters, channels (File/FastFile directories, Pipe FIFO bases), modes and output paths;
        ``resource``: resourceconfig.json's content when the caller has read it already."""
        specs = self._json("inputdataconfig.json")
        if resource is None:
            resource = self.resource_config()
        paths = TrainPaths(
            channels={name: self.root / "input" / "data" / name for name in specs},
            model_dir=self.root / "model",
            output_data_dir=self.root / "output" / "data",
            checkpoint_dir=self.checkpoint_dir(),
            sharded=frozenset(n for n, s in specs.items() if s.get("S3DistributionType") == "ShardedByS3Key"),
            pipe=frozenset(n for n, s in specs.items() if s.get("TrainingInputMode", "File") == "Pipe"),
        )
        hyperparameters = {k: _decode(v) for k, v in self._json("hyperparameters.json").items()}
        hosts = tuple(resource.get("hosts") or ())
        return JobSpec(hyperparameters, paths, hosts, resource.get("current_host", ""))

    def clear_outcome(self) -> None:
        """Remove the previous run's success/failure files (a re-run in the same tree, e.g. the quick start).

        A stale failure file would win over the new reason (first writer wins, and the toolkit skips writing
        its own when one exists), and success and failure could coexist. Checkpoints and the model stay:
        they are how a re-run resumes.
        """
        for path in (self.success, self.failure):
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:  # e.g. a read-only output dir: the run reports its own problem later
                print(f"could not remove the previous run's {path}: {exc}", file=sys.stderr)

    def write_failure(self, message: str) -> None:
        """Write the failure file once, cut to what SageMaker shows; the toolkit writes its own only if ours
        is not there."""
        try:
            self.failure.parent.mkdir(parents=True, exist_ok=True)
            if not self.failure.exists():
                self.failure.write_text(message[:FAILURE_LIMIT])
        except OSError as exc:  # a read-only or missing output dir must not hide the real error
            print(f"could not write {self.failure}: {exc}", file=sys.stderr)
