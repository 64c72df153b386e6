"""The training environment is parsed once, typed, and bad values or near-miss names fail naming the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from train.errors import UserError
from train.settings import TrainSettings, markdown_table, settings_from_env

README = Path(__file__).resolve().parents[2] / "README.md"


def test_an_empty_environment_gives_the_documented_defaults():
    assert settings_from_env({}) == TrainSettings()
    s = TrainSettings()
    assert (s.base_dir, s.processes_per_host, s.master_port) == (Path("/opt/ml"), None, 7777)
    assert (s.peer_timeout_s, s.collective_timeout_s, s.pipe_timeout_s) == (600, 1800, 600)


def test_every_variable_is_parsed_into_its_type():
    s = settings_from_env({"SAGEMAKER_BASE_DIR": "/tmp/ml", "BYOC_PROCESSES_PER_HOST": "4", "BYOC_MASTER_PORT": "29400",
                           "BYOC_PEER_TIMEOUT_S": "5", "BYOC_COLLECTIVE_TIMEOUT_S": "90.5", "BYOC_PIPE_TIMEOUT_S": "1",
                           "TRAINING_JOB_NAME": "job-1", "BYOC_HOST_ADDRESSES": '{"algo-2": "10.0.0.7"}'})
    assert s == TrainSettings(Path("/tmp/ml"), 4, 29400, 5.0, 90.5, 1.0, "job-1", {"algo-2": "10.0.0.7"})


@pytest.mark.parametrize(("name", "value", "rule"), [
    ("BYOC_PROCESSES_PER_HOST", "0", "a whole number in [1, 1024]"),
    ("BYOC_PROCESSES_PER_HOST", "two", "a whole number in [1, 1024]"),
    ("BYOC_MASTER_PORT", "70000", "a whole number in [1, 65535]"),
    ("BYOC_PEER_TIMEOUT_S", "-1", "a number of seconds in (0, 86400]"),
    ("BYOC_PIPE_TIMEOUT_S", "soon", "a number of seconds in (0, 86400]"),
    ("BYOC_HOST_ADDRESSES", "[1]", "a JSON object of host -> address (PID 1 sets it)"),
])
def test_a_bad_value_is_a_user_error_naming_the_variable_and_what_is_accepted(name, value, rule):
    with pytest.raises(UserError) as err:
        settings_from_env({name: value})
    assert str(err.value).startswith(f"environment variable {name}={value!r} is not {rule}. Fix: set {name}")


def test_a_near_miss_of_a_training_variable_is_refused_naming_the_real_one():
    with pytest.raises(UserError) as err:
        settings_from_env({"BYOC_PROCESS_PER_HOST": "2"})
    message = str(err.value)
    assert "unknown environment variable BYOC_PROCESS_PER_HOST (did you mean BYOC_PROCESSES_PER_HOST?)" in message


def test_other_byoc_names_belong_to_tools_around_the_image_and_are_left_alone():
    assert settings_from_env({"BYOC_IMAGE": "byoc:test", "BYOC_GPU_IMAGE": "x", "BYOC_HOSTS": "[]"}) == TrainSettings()


def test_the_readme_lists_every_training_variable_with_its_default():
    readme = README.read_text()
    for row in markdown_table().splitlines()[2:]:
        assert row in readme, row
