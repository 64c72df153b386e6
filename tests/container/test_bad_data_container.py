"""Representative bad data through the real image: the job fails at once with `UserError:` naming the file,
exit code 1, and nothing in /opt/ml/model (the full corpus runs in-process: tests/integration/test_bad_data.py)."""

from __future__ import annotations

from pathlib import Path

from tests.bad_data import CASES, DECODE_ONLY, good_channel
from tests.container.mltree import TINY_HYPERPARAMETERS, finish, make_tree, start

BY_NAME = {case.name: case for case in CASES}
#: One of each family of problems: an empty file, a wrong mode, a size mismatch, an absurd size.
SHOWN_TOGETHER = ["zero-byte image", "8-bit greyscale normal map", "mask of another size", "huge 16-bit normal map"]


def _channel(root: Path) -> Path:
    return good_channel(root / "train", count=6)


def _fails_as_user_error(docker_client, image, tree) -> str:
    code, logs = finish(start(docker_client, image, tree, network_mode="none"), timeout=300)
    assert code == 1, logs
    reason = tree.failure.read_text()
    assert reason.startswith("UserError: ") and "Traceback" not in reason, reason
    assert list(tree.model_dir.iterdir()) == [] and not tree.checkpoints.exists(), logs
    assert not (tree.root / "output" / "success").exists()
    return reason.splitlines()[0]


def test_bad_files_fail_the_job_before_training_naming_each_file(docker_client, image, tmp_path):
    channel = _channel(tmp_path)
    named = []
    for i, name in enumerate(SHOWN_TOGETHER):
        # each case damages scene_00001; give each its own sample
        sample = tmp_path / f"one{i}"
        good_channel(sample, count=2, seed=10 + i)
        relative = BY_NAME[name].apply(sample)
        stem = f"bad{i}"
        for sub in ("images", "normals", "masks"):
            for path in (sample / sub).glob("scene_00001.*"):
                (channel / sub / f"{stem}{path.suffix}").write_bytes(path.read_bytes())
        named.append(relative.replace("scene_00001", stem))
    tree = make_tree(tmp_path / "ml", TINY_HYPERPARAMETERS, {"train": channel})
    first_line = _fails_as_user_error(docker_client, image, tree)
    assert first_line.startswith(f"UserError: {len(named)} data problem(s) found before training"), first_line
    for relative in named:
        assert f"/opt/ml/input/data/train/{relative}" in first_line, (relative, first_line)


def test_pixel_damage_found_while_training_in_a_loader_worker_is_a_user_error(docker_client, image, tmp_path):
    channel = _channel(tmp_path)
    relative = DECODE_ONLY.apply(channel)
    tree = make_tree(tmp_path / "ml", {**TINY_HYPERPARAMETERS, "data_workers": "2", "validation_fraction": "0"},
                     {"train": channel})
    first_line = _fails_as_user_error(docker_client, image, tree)
    assert f"/opt/ml/input/data/train/{relative}" in first_line and "cannot read image" in first_line, first_line
