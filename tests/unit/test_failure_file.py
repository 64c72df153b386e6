import pytest

from container import training


def test_failure_file_is_cut_to_what_sagemaker_shows_and_written_once(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "BASE_DIR", tmp_path)
    training.write_failure("UserError: first" + "x" * 2000)
    training.write_failure("a later, less specific reason")
    text = (tmp_path / "output" / "failure").read_text()
    assert text.startswith("UserError: first") and len(text) == training.FAILURE_LIMIT == 1024


def _stale_tree(base):
    (base / "output").mkdir(parents=True)
    (base / "output" / "failure").write_text("UserError: from the previous run")
    (base / "output" / "success").write_text("")
    for kept in ("model/model.pt", "checkpoints/checkpoint-step000000001.pt", "output/data/metrics.json"):
        (base / kept).parent.mkdir(parents=True, exist_ok=True)
        (base / kept).write_text("keep me")


def test_a_new_run_clears_the_previous_outcome_but_not_checkpoints_or_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(training, "BASE_DIR", tmp_path)
    _stale_tree(tmp_path)
    with pytest.raises(SystemExit):
        training.launch([])  # no input/config: fails at once with its own reason
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("UserError:") and "lacks hyperparameters.json" in failure
    assert not (tmp_path / "output" / "success").exists()
    for kept in ("model/model.pt", "checkpoints/checkpoint-step000000001.pt", "output/data/metrics.json"):
        assert (tmp_path / kept).read_text() == "keep me"
