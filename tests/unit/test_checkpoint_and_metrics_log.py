import json
import re

import torch

from model.normals.spec import SPEC as NORMALS
from train import metrics_log
from train.checkpoint import CheckpointManager


def test_checkpoints_keep_the_newest_and_resume_from_the_latest(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    for step in (5, 10, 15):
        manager.save({"step": step, "weights": torch.full((2,), float(step))})
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint-step000000010.pt", "checkpoint-step000000015.pt"]
    _, state = manager.latest()
    assert state["step"] == 15 and torch.equal(state["weights"], torch.full((2,), 15.0))


def test_unreadable_newest_checkpoint_falls_back_to_the_previous(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    manager.save({"step": 1})
    (tmp_path / "checkpoint-step000000002.pt").write_bytes(b"truncated")
    assert manager.latest()[1]["step"] == 1


def test_foreign_files_in_the_checkpoint_dir_are_left_alone(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    manager = CheckpointManager(tmp_path, keep=1)
    manager.save({"step": 1})
    manager.save({"step": 2})
    assert (tmp_path / "notes.txt").exists()


def test_metric_definitions_file_matches_the_code_and_limits():
    defs = metrics_log.load_definitions()
    # The committed file is the built-in family's generated definitions (python -m train.metrics_log).
    assert defs == [{"Name": n, "Regex": metrics_log.regex_for(n)} for n in NORMALS.metric_names()]
    assert defs == metrics_log.definitions(NORMALS)
    assert len(defs) <= 40
    assert all(len(d["Regex"]) <= 500 and 1 <= len(d["Name"]) <= 255 for d in defs)


def test_each_regex_reads_its_own_metric_line_and_no_other():
    defs = metrics_log.load_definitions()
    lines = [metrics_log.format_metric(3, d["Name"], 12.5 + i) for i, d in enumerate(defs)]
    for i, d in enumerate(defs):
        found = [m.group(1) for line in lines if (m := re.search(d["Regex"], line))]
        assert found == [f"{12.5 + i:.6f}"], d["Name"]


def test_definitions_are_valid_json_for_the_api():
    json.dumps(metrics_log.load_definitions())
