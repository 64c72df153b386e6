"""The bad-data corpus through the training entry: every case fails as one UserError naming the file, before
any training step (nothing in the model dir, no checkpoint); damage only decoding can find fails mid-training
as a UserError naming the file, also from DataLoader worker processes."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.bad_data import CASES, DECODE_ONLY, all_mask_modes, good_channel
from tests.integration.test_training import TINY, make_job
from train.errors import UserError
from train.loop import run

FAST = {**TINY, "epochs": "1", "validation_fraction": "0", "panels": "0"}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    return good_channel(tmp_path_factory.mktemp("pristine") / "train")


def fresh(pristine: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp / "train"))


def fails_before_training(tmp: Path, channels: dict, hps: dict | None = None) -> str:
    job = make_job(tmp / "out", hps or FAST, channels)
    with pytest.raises(UserError) as err:
        run(job)
    assert not (tmp / "out" / "model").exists() and not (tmp / "out" / "checkpoints").exists()
    return str(err.value)


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_data_fails_before_training_naming_the_file(case, pristine, tmp_path):
    channel = fresh(pristine, tmp_path)
    named = case.apply(channel)
    message = fails_before_training(tmp_path, {"train": channel})
    first_line = message.splitlines()[0]
    assert named in first_line and re.search(case.says, first_line), message
    assert "Fix:" in first_line


def test_all_problems_of_all_channels_are_reported_at_once(pristine, tmp_path):
    train = fresh(pristine, tmp_path)
    validation = Path(shutil.copytree(pristine, tmp_path / "validation"))
    (train / "images" / "scene_00000.png").write_bytes(b"")
    (train / "normals" / "scene_00002.png").write_bytes(b"not a png")
    (validation / "masks" / "scene_00003.png").write_bytes(b"")
    message = fails_before_training(tmp_path, {"train": train, "validation": validation})
    assert message.startswith("3 data problem(s) found before training")
    for rel in ("train/images/scene_00000.png", "train/normals/scene_00002.png", "validation/masks/scene_00003.png"):
        assert rel in message


def test_only_the_first_problems_are_listed_with_a_count(pristine, tmp_path):
    train = good_channel(tmp_path / "train", count=8)
    for path in (train / "images").iterdir():
        path.write_bytes(b"")
    message = fails_before_training(tmp_path, {"train": train})
    assert message.startswith("8 data problem(s)") and "and 3 more" in message


def test_masks_in_every_supported_mode_train(pristine, tmp_path):
    channel = good_channel(tmp_path / "train", count=6)
    all_mask_modes(channel)
    summary = run(make_job(tmp_path / "out", FAST, {"train": channel}))
    assert summary["steps"] == 2 and (tmp_path / "out" / "model" / "model.pt").exists()


@pytest.mark.parametrize("workers", ["-1", "0", "2"])
def test_damage_only_decoding_finds_is_a_user_error_naming_the_file(pristine, tmp_path, workers):
    channel = fresh(pristine, tmp_path)
    named = DECODE_ONLY.apply(channel)
    job = make_job(tmp_path / "out", {**FAST, "data_workers": workers}, {"train": channel})
    with pytest.raises(UserError) as err:
        run(job)
    first_line = str(err.value).splitlines()[0]
    assert named in first_line and re.search(DECODE_ONLY.says, first_line), str(err.value)
    assert "Caught" not in str(err.value) and "Traceback" not in str(err.value)
    assert not (tmp_path / "out" / "model").exists()
