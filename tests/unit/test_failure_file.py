import pytest

from container import training
from container.jobtree import FAILURE_LIMIT, JobTree
from container.worker import outcome_file
from train.outcome import SUCCEEDED, Outcome
from train.settings import settings_from_env


def test_failure_file_is_cut_to_what_sagemaker_shows_and_written_once(tmp_path):
    tree = JobTree(tmp_path)
    tree.write_failure("UserError: first" + "x" * 2000)
    tree.write_failure("a later, less specific reason")
    text = (tmp_path / "output" / "failure").read_text()
    assert text.startswith("UserError: first") and len(text) == FAILURE_LIMIT == 1024


def _stale_tree(base):
    (base / "output").mkdir(parents=True)
    (base / "output" / "failure").write_text("UserError: from the previous run")
    (base / "output" / "success").write_text("")
    for kept in ("model/model.pt", "checkpoints/checkpoint-step000000001.pt", "output/data/metrics.json"):
        (base / kept).parent.mkdir(parents=True, exist_ok=True)
        (base / kept).write_text("keep me")


def test_a_new_run_clears_the_previous_outcome_but_not_checkpoints_or_the_model(tmp_path):
    _stale_tree(tmp_path)
    with pytest.raises(SystemExit):
        training.launch([], environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})  # no input/config: fails at once
    failure = (tmp_path / "output" / "failure").read_text()
    assert failure.startswith("UserError:") and "lacks hyperparameters.json" in failure
    assert not (tmp_path / "output" / "success").exists()
    for kept in ("model/model.pt", "checkpoints/checkpoint-step000000001.pt", "output/data/metrics.json"):
        assert (tmp_path / kept).read_text() == "keep me"


def _two_process_layout():
    from container import distributed

    return distributed.plan({"hosts": ["algo-1"], "current_host": "algo-1"}, pipe=False,
                            settings=settings_from_env({"BYOC_PROCESSES_PER_HOST": "2"}))


def test_a_stop_without_a_confirmed_checkpoint_does_not_claim_one(tmp_path, monkeypatch):
    # torchrun was stopped, but no process reported "stopped" (e.g. they were killed before checkpointing)
    from container import distributed

    monkeypatch.setattr(distributed, "run", lambda layout, spec: (-9, True))
    outcome = training.run_distributed(_two_process_layout(), tmp_path / "job.json")
    assert outcome.kind == "stopped" and outcome.exit_code == 143
    assert outcome.line.startswith("Stopped: SIGTERM on host algo-1")
    assert "before confirming a checkpoint" in outcome.line


def test_a_sigterm_after_every_process_finished_is_a_success_not_a_stop(tmp_path, monkeypatch):
    # torchrun exits non-zero on the SIGTERM it got, though its processes had already finished training
    from container import distributed

    def torchrun(layout, spec):
        for rank in range(layout.processes_per_host):
            outcome_file(spec, rank).write_text(SUCCEEDED.to_json())
        return 1, True

    monkeypatch.setattr(distributed, "run", torchrun)
    outcome = training.run_distributed(_two_process_layout(), tmp_path / "job.json")
    assert outcome == SUCCEEDED
    training.report(JobTree(tmp_path), outcome)  # returns: success
    assert not (tmp_path / "output" / "failure").exists()


def _torchrun_reporting(*outcomes: Outcome, signalled: bool = False):
    def torchrun(layout, spec):
        for rank, outcome in enumerate(outcomes):
            outcome_file(spec, rank).write_text(outcome.to_json())
        return 1, signalled

    return torchrun


def test_pid1_adopts_the_user_error_a_process_reported_not_its_peers_lost_contact(tmp_path, monkeypatch):
    from container import distributed

    lost = Outcome("internal", "InternalError: on host algo-1 (rank 0): lost contact with host algo-1: ...")
    user = Outcome("user", "UserError: channel 'train' is empty (on host algo-1 (rank 1))")
    monkeypatch.setattr(distributed, "run", _torchrun_reporting(lost, user))
    assert training.run_distributed(_two_process_layout(), tmp_path / "job.json") == user


def test_pid1_adopts_a_confirmed_stop_with_the_step_its_process_saved(tmp_path, monkeypatch):
    from container import distributed

    saved = Outcome("stopped", "Stopped: training stopped by SIGTERM at step 7 (epoch 2); a checkpoint was saved")
    monkeypatch.setattr(distributed, "run", _torchrun_reporting(saved, Outcome("stopped", saved.line),
                                                                signalled=True))
    outcome = training.run_distributed(_two_process_layout(), tmp_path / "job.json")
    assert outcome == saved and outcome.exit_code == 143


def test_pid1_describes_a_failure_no_process_reported(tmp_path, monkeypatch):
    from container import distributed

    monkeypatch.setattr(distributed, "run", lambda layout, spec: (-9, False))  # killed, e.g. out of memory
    outcome = training.run_distributed(_two_process_layout(), tmp_path / "job.json")
    assert outcome.kind == "internal" and outcome.line.startswith("InternalError: on host algo-1: torchrun exited")
