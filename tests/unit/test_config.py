import subprocess
import sys

import pytest

from model.normals.config import UNetConfig
from model.normals.spec import SPEC
from train.config import TrainConfig, crop_side, parse_hyperparameters, split_hyperparameters
from train.errors import UserError


def parse(raw):
    return split_hyperparameters(raw, SPEC)


def test_defaults_when_nothing_is_given():
    config, arch = parse({})
    assert config == TrainConfig()
    assert arch == UNetConfig()


def test_raw_strings_are_typed():
    config, arch = parse({"epochs": "3", "learning_rate": "0.01", "augment": "false", "base_channels": "8"})
    assert (config.epochs, config.learning_rate, config.augment, arch.base_channels) == (3, 0.01, False, 8)


def test_json_quoted_values_from_the_sdk_are_unquoted():
    config, _ = parse({"learning_rate": '"0.001"', "precision": '"bf16"', "epochs": '"4"'})
    assert (config.learning_rate, config.precision, config.epochs) == (0.001, "bf16", 4)


@pytest.mark.parametrize(
    "text,expected", [("True", True), ("true", True), ("FALSE", False), ("0", False), (True, True)]
)
def test_booleans_in_every_spelling_sagemaker_sends(text, expected):
    assert parse({"compile": text})[0].compile is expected


def test_values_already_decoded_by_the_toolkit_are_accepted():
    config, _ = parse({"epochs": 5, "learning_rate": 0.5, "augment": False, "batch_size": 8.0})
    assert (config.epochs, config.learning_rate, config.augment, config.batch_size) == (5, 0.5, False, 8)


def test_tuning_and_sdk_keys_are_ignored():
    config, _ = parse({"_tuning_objective_metric": "validation:loss", "sagemaker_program": '"x.py"'})
    assert config == TrainConfig()


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError) as err:
        parse({"epoch": "3"})
    assert "epoch" in str(err.value) and "epochs" in err.value.fix and "base_channels" in err.value.fix


@pytest.mark.parametrize(
    "raw,fragment",
    [
        ({"epochs": "abc"}, "'epochs' has the bad value 'abc'"),
        ({"epochs": "0"}, "outside 1..100000"),
        ({"epochs": "2.5"}, "expected an integer"),
        ({"learning_rate": "nan"}, "finite"),
        ({"precision": "fp8"}, "auto | fp32 | bf16 | fp16"),
        ({"augment": "maybe"}, "boolean"),
        ({"depth": "9"}, "depth must be in [1, 6]"),
        ({"image_size": "100"}, "multiple of the network stride 16"),
        ({"crop_fraction": "0"}, "outside (0, 1]"),
    ],
)
def test_bad_values_name_the_parameter_the_value_and_the_rule(raw, fragment):
    with pytest.raises(UserError) as err:
        parse(raw)
    assert fragment in str(err.value)


@pytest.mark.parametrize("image_size,fraction,multiple,side", [
    (128, 0.875, 16, 112), (256, 0.875, 16, 224), (64, 0.875, 16, 64), (96, 0.875, 16, 80),
    (128, 1.0, 16, 128), (128, 0.01, 16, 16), (32, 0.5, 4, 16),
])
def test_training_windows_are_the_fraction_of_the_frame_to_the_nearest_stride(image_size, fraction, multiple, side):
    config, _ = parse({"image_size": str(image_size), "crop_fraction": str(fraction)})
    assert crop_side(config, multiple) == side


def test_config_is_frozen():
    config, _ = parse({})
    with pytest.raises(AttributeError):
        config.epochs = 3


def test_unknown_model_family_is_a_user_error():
    with pytest.raises(UserError, match="model_family"):
        parse_hyperparameters({"model_family": "nowhere.module:Nothing"})


def test_config_module_does_not_need_torch():
    # Launchers validate hyperparameters on laptops without torch.
    code = "import sys, train.config, model.normals.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_readme_documents_every_hyperparameter_as_the_code_defines_it():
    from pathlib import Path

    from model.normals.config import UNetConfig
    from train.config import markdown_table

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table(TrainConfig) in readme
    assert markdown_table(UNetConfig) in readme


NUMERIC = [f.name for f in __import__("dataclasses").fields(TrainConfig) if f.type in ("int", "float")]


@pytest.mark.parametrize("name", NUMERIC)
def test_every_numeric_hyperparameter_has_a_range_that_rejects_absurd_values(name):
    field = TrainConfig.__dataclass_fields__[name]
    assert field.metadata.get("check") and field.metadata.get("rule"), f"{name} has no range"
    for absurd in ("1e30", str(10**30), 10**30, "-1e30"):
        with pytest.raises(UserError, match=f"'{name}'"):
            parse({name: absurd})


@pytest.mark.parametrize("raw", ["-1", "2e13", str(2**32), 2**32])
def test_seed_outside_32_bits_is_a_user_error(raw):
    with pytest.raises(UserError, match=r"'seed'.*0\.\.4294967295"):
        parse({"seed": raw})


def test_largest_32_bit_seed_is_accepted():
    assert parse({"seed": str(2**32 - 1)})[0].seed == 2**32 - 1


@pytest.mark.parametrize("raw", ["1" * 401, int("1" * 401), "1e400", "-" + "9" * 5000, "0x10", [1], {"a": 1}, None])
def test_any_numeric_conversion_error_is_a_user_error_naming_the_parameter(raw):
    # The toolkit JSON-decodes values, so a 401-digit number arrives as a Python int: float() overflows.
    for name in ("learning_rate", "epochs"):
        with pytest.raises(UserError, match=f"'{name}'"):
            parse({name: raw})
