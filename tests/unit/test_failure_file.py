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


def test_a_stop_without_a_confirmed_checkpoint_does_not_claim_one(tmp_path, monkeypatch):
    # torchrun was stopped, but no worker wrote "Stopped: ..." (e.g. they were killed before checkpointing)
    from types import SimpleNamespace

    from container import distributed
    from train.errors import TrainingStopped

    monkeypatch.setattr(training, "BASE_DIR", tmp_path)
    monkeypatch.setattr(distributed, "run", lambda layout, spec: (-9, True))
    layout = distributed.plan({"hosts": ["algo-1"], "current_host": "algo-1"}, pipe=False,
                              environ={"BYOC_PROCESSES_PER_HOST": "2"})
    paths = SimpleNamespace(channels={}, model_dir=tmp_path, output_data_dir=tmp_path, checkpoint_dir=tmp_path,
                            sharded=frozenset(), pipe=frozenset())
    with pytest.raises(TrainingStopped) as err:
        training._run_distributed(layout, SimpleNamespace(hyperparameters={}), paths, tmp_path)
    assert "before confirming a checkpoint" in str(err.value)


def test_a_sigterm_after_every_process_finished_is_a_success_not_a_stop(tmp_path, monkeypatch):
    # torchrun exits non-zero on the SIGTERM it got, though its workers had already finished training
    from types import SimpleNamespace

    from container import distributed
    from container.worker import finished_marker

    monkeypatch.setattr(training, "BASE_DIR", tmp_path)

    def torchrun(layout, spec):
        for rank in range(layout.processes_per_host):
            finished_marker(spec, rank).touch()
        return 1, True

    monkeypatch.setattr(distributed, "run", torchrun)
    layout = distributed.plan({"hosts": ["algo-1"], "current_host": "algo-1"}, pipe=False,
                              environ={"BYOC_PROCESSES_PER_HOST": "2"})
    paths = SimpleNamespace(channels={}, model_dir=tmp_path, output_data_dir=tmp_path, checkpoint_dir=tmp_path,
                            sharded=frozenset(), pipe=frozenset())
    training._run_distributed(layout, SimpleNamespace(hyperparameters={}), paths, tmp_path)  # returns: success
    assert not (tmp_path / "output" / "failure").exists()
