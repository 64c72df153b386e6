"""One map from how a run ended to the failure file's line and the exit code, for every entry point."""

from __future__ import annotations

import pytest

from model.family import DataFormatError
from train.errors import TrainingStopped, UserError
from train.outcome import SUCCEEDED, ExplainedFailure, Outcome, outcome_of


def _outcome(exc: BaseException, *args) -> Outcome:
    try:
        raise exc
    except BaseException as raised:
        return outcome_of(raised, *args)


def test_a_user_error_is_the_users_line_without_a_traceback_and_exit_1():
    outcome = _outcome(UserError("epochs must be >= 1", "set epochs=10"))
    assert outcome == Outcome("user", "UserError: epochs must be >= 1. Fix: set epochs=10")
    assert outcome.exit_code == 1 and "Traceback" not in outcome.line


def test_a_scale_out_process_names_itself_after_a_user_error():
    outcome = _outcome(UserError("channel 'train' is empty"), "on host algo-2 (rank 1)")
    assert outcome.line == "UserError: channel 'train' is empty (on host algo-2 (rank 1))"


def test_a_file_that_breaks_the_data_format_is_a_user_error():
    assert _outcome(DataFormatError("images/a.png is not an image")).line == "UserError: images/a.png is not an image"


def test_a_stop_after_a_checkpoint_exits_143():
    outcome = _outcome(TrainingStopped("training stopped by SIGTERM at step 3"))
    assert (outcome.kind, outcome.line, outcome.exit_code) == ("stopped", "Stopped: training stopped by SIGTERM at "
                                                                          "step 3", 143)


def test_anything_else_is_internal_with_the_fix_and_the_traceback():
    outcome = _outcome(ZeroDivisionError("division by zero"))
    first = outcome.line.splitlines()[0]
    assert first.startswith("InternalError: ZeroDivisionError: division by zero Fix: this is likely a bug")
    assert "Traceback (most recent call last)" in outcome.line and outcome.exit_code == 1


def test_a_scale_out_process_names_the_peer_it_lost():
    outcome = _outcome(RuntimeError("Connection closed by peer [10.0.0.7]:43210"), "on host algo-1 (rank 0)",
                       ("algo-2",))
    assert outcome.line.startswith("InternalError: on host algo-1 (rank 0): lost contact with host algo-2: "
                                   "RuntimeError: Connection closed by peer")
    assert "look at that host's log first" in outcome.line.splitlines()[0]


def test_an_explained_failure_says_what_and_how_to_fix_without_a_traceback():
    outcome = _outcome(ExplainedFailure("on host algo-1: host algo-2 did not resolve", "check the hosts."))
    assert outcome == Outcome("internal", "InternalError: on host algo-1: host algo-2 did not resolve. Fix: check "
                                          "the hosts.")


@pytest.mark.parametrize("outcome", [SUCCEEDED, Outcome("user", "UserError: x"), Outcome("stopped", "Stopped: y")])
def test_an_outcome_survives_the_trip_between_processes(outcome):
    assert Outcome.from_json(outcome.to_json()) == outcome
