"""The three entry points assemble the job the same way and report through the one outcome map, in-process:
the container's PID 1 (``container.training.main`` on an /opt/ml tree), a scale-out process
(``container.worker.main`` on a job spec) and ``python -m train``."""

from __future__ import annotations

import json
import logging
import signal
from pathlib import Path

import pytest

from container import training, worker
from container.jobtree import JobTree
from model.normals.synthetic import write_dataset
from tests.integration.test_training import TINY
from train.__main__ import main as laptop_main
from train.outcome import Outcome

BAD = {**TINY, "epochs": "many"}
BAD_LINE = "UserError: hyperparameter 'epochs' has the bad value 'many'"


@pytest.fixture(autouse=True)
def restore_process_state():
    """The entry points install a SIGTERM handler and configure logging, as a process of their own would."""
    handler, root = signal.getsignal(signal.SIGTERM), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    signal.signal(signal.SIGTERM, handler)
    root.handlers[:], root.level = handlers, level


@pytest.fixture(scope="module")
def channel(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("entry") / "train"
    write_dataset(root, count=6, size=40, seed=3)
    return root


def _tree(root: Path, hps: dict, channel: Path) -> JobTree:
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({**hps, "epochs": hps.get("epochs", "1")}))
    (config / "inputdataconfig.json").write_text(json.dumps({"train": {"TrainingInputMode": "File"}}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    (root / "input" / "data").mkdir(parents=True)
    (root / "input" / "data" / "train").symlink_to(channel)
    return JobTree(root)


def test_pid1_trains_in_process_from_the_tree_it_is_given(tmp_path, channel, monkeypatch):
    tree = _tree(tmp_path, {**TINY, "epochs": "1"}, channel)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    training.main()  # returns: the toolkit then writes output/success
    assert (tmp_path / "model" / "model.pt").exists() and not tree.failure.exists()


def test_pid1_reports_a_user_error_for_the_toolkit_to_exit_1(tmp_path, channel, monkeypatch):
    from sagemaker_training import errors

    tree = _tree(tmp_path, BAD, channel)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    with pytest.raises(errors.ClientError):
        training.main()
    assert tree.failure.read_text().startswith(BAD_LINE)


def test_pid1_hands_a_stop_to_the_toolkit_as_exit_143(tmp_path):
    with pytest.raises(training.JobFailed) as err:
        training.report(JobTree(tmp_path), Outcome("stopped", "Stopped: at step 3"))
    assert err.value.errno == 143 and JobTree(tmp_path).failure.read_text() == "Stopped: at step 3"


def test_pid1_exits_1_for_an_internal_error_even_when_it_carries_an_errno(tmp_path):
    # The toolkit exits with an exception's ``errno``: an OSError (disk full: 28) must still exit 1, as documented.
    try:
        raise OSError(28, "No space left on device")
    except OSError as exc:
        outcome = training.outcome_of(exc)
    with pytest.raises(training.JobFailed) as err:
        training.report(JobTree(tmp_path), outcome)
    assert err.value.errno == 1 and JobTree(tmp_path).failure.read_text().startswith("InternalError: OSError: ")


def test_a_scale_out_process_reports_its_outcome_to_pid1(tmp_path, channel):
    spec = _tree(tmp_path, {**TINY, "epochs": "1"}, channel).job_spec().write(tmp_path / "job.json")
    environ = {"SAGEMAKER_BASE_DIR": str(tmp_path), "RANK": "0", "LOCAL_RANK": "0"}
    assert worker.main([str(spec)], environ) == 0
    assert worker.read_outcomes(spec, 1) == [Outcome("success")]
    assert (tmp_path / "model" / "model.pt").exists()


def test_a_scale_out_process_names_itself_in_a_user_error(tmp_path, channel):
    tree = _tree(tmp_path, BAD, channel)
    spec = tree.job_spec().write(tmp_path / "job.json")
    assert worker.main([str(spec)], {"SAGEMAKER_BASE_DIR": str(tmp_path), "RANK": "0", "LOCAL_RANK": "0"}) == 1
    [outcome] = worker.read_outcomes(spec, 1)
    assert outcome.kind == "user" and outcome.line.startswith(BAD_LINE)
    assert outcome.line.endswith("(on host algo-1 (rank 0))") and tree.failure.read_text() == outcome.line


def test_the_laptop_cli_prints_the_same_line_and_exits_1(tmp_path, channel, capsys):
    argv = ["--channel", f"train={channel}", "--model-dir", str(tmp_path / "m"), "--output-dir", str(tmp_path / "d"),
            *[arg for name, value in BAD.items() for arg in ("--hp", f"{name}={value}")]]
    assert laptop_main(argv) == 1
    assert capsys.readouterr().err.startswith(BAD_LINE)


def test_pid1_parses_the_hyperparameters_and_reads_the_resource_config_once(tmp_path, channel, monkeypatch):
    import train.job

    calls = {"parse": 0, "resourceconfig.json": 0}
    parse, read = train.job.parse_hyperparameters, JobTree._json

    def counted_parse(raw):
        calls["parse"] += 1
        return parse(raw)

    def counted_read(self, name):
        calls[name] = calls.get(name, 0) + 1
        return read(self, name)

    monkeypatch.setattr(train.job, "parse_hyperparameters", counted_parse)
    monkeypatch.setattr(JobTree, "_json", counted_read)
    tree = _tree(tmp_path, {**TINY, "epochs": "1"}, channel)
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    training.main()
    assert not tree.failure.exists()
    assert calls["parse"] == 1 and calls["resourceconfig.json"] == 1


def test_the_laptop_entry_point_parses_the_hyperparameters_once(tmp_path, channel, monkeypatch):
    import train.job

    parse, seen = train.job.parse_hyperparameters, []
    monkeypatch.setattr(train.job, "parse_hyperparameters", lambda raw: seen.append(raw) or parse(raw))
    hps = [f"--hp={k}={v}" for k, v in {**TINY, "epochs": "1"}.items()]
    assert laptop_main([f"--channel=train={channel}", *hps, f"--model-dir={tmp_path / 'model'}",
                        f"--output-dir={tmp_path / 'out'}"]) == 0
    assert len(seen) == 1
