"""The family spec: one torch-free declaration the plumbing reads, with hooks declared, never discovered."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from model.family import MeanMetrics, ModelFamily, check_dataset_hooks
from model.normals.spec import SPEC as NORMALS
from model.spec import HOOKS, FamilySpec, load_spec
from serve.codecs import JSON, NPY, MediaType
from serve.encoding import Output, encode, json_record_size

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Cfg:
    width: int = 2


def spec(**overrides) -> FamilySpec:
    return FamilySpec(**{"config_type": Cfg, "metrics": ("mse",), "objective": "mse", "output_name": "depth",
                         **overrides})


class _Minimal(ModelFamily):
    """The six members a family must write (here as stubs)."""

    spec = spec()

    def build(self, config):
        return torch.nn.Conv2d(3, 1, 1)

    def index(self, channel_dir):
        return []

    def dataset(self, samples, *, image_size, augment, seed):
        return []

    def loss(self, outputs, batch):
        return outputs.mean()

    def sample_metrics(self, outputs, batch):
        return {"mse": ((outputs - batch["target"]) ** 2).flatten(1).mean(1)}


def test_a_misspelled_hook_is_rejected_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown hook\(s\) \['check_dta'\]; valid hooks: \['baseline_image'"):
        spec(hooks={"check_dta"})


def test_a_declared_hook_the_class_does_not_write_fails_when_the_class_is_defined() -> None:
    with pytest.raises(TypeError, match=r"declares hook\(s\) \['check_data'\] that the class does not write"):
        type("Broken", (_Minimal,), {"spec": spec(hooks={"check_data"})})


def test_a_hook_written_but_not_declared_fails_instead_of_being_silently_ignored() -> None:
    with pytest.raises(TypeError, match=r"writes hook\(s\) \['constant_prediction'\] that its spec does not"):
        type("Broken", (_Minimal,), {"constant_prediction": lambda self, batch: None})


def test_a_family_must_measure_its_metrics_one_way_or_the_other() -> None:
    with pytest.raises(TypeError, match="must write sample_metrics"):
        type("NoMetrics", (_Minimal,), {"sample_metrics": ModelFamily.sample_metrics})


class _Epochs:
    def set_epoch(self, epoch):
        pass


def test_dataset_hooks_must_match_the_declaration_both_ways() -> None:
    check_dataset_hooks(spec(hooks={"dataset_set_epoch"}), _Epochs())
    with pytest.raises(TypeError, match="has set_epoch\\(\\) but the spec does not declare"):
        check_dataset_hooks(spec(), _Epochs())
    with pytest.raises(TypeError, match="lacks preload\\(\\) but the spec declares"):
        check_dataset_hooks(spec(hooks={"dataset_preload"}), object())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"objective": "psnr"}, "objective 'psnr' is not one of the metrics"),
    ({"higher_is_better": ("psnr",)}, "not metrics"),
    ({"output_name": 'a"b'}, "identifiers"),
    ({"output_range": (1.0, 0.0)}, "low < high"),
    ({"record_format": "tar"}, "sample_from_record hook is not declared"),
    ({"config_type": dict}, "dataclass"),
])
def test_inconsistent_specs_are_refused_saying_what_is_wrong(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**overrides)


def test_the_required_surface_is_six_members_and_the_rest_has_defaults() -> None:
    family = _Minimal()
    image = np.zeros((5, 7, 3), np.uint8)
    x = family.to_input(image, family.preprocessing(Cfg(), 16))
    out = family.from_output(torch.rand(1, *x.shape[1:]), image.shape)
    assert x.shape == (3, 5, 7) and out.shape == (5, 7, 1)
    assert family.to_image(out).shape == (5, 7, 3)
    batch = {"input": torch.rand(2, 3, 4, 4), "target": torch.zeros(2, 1, 4, 4)}
    assert family.panel(batch, torch.full((2, 1, 4, 4), 0.5), 0).shape == (4, 8, 3)
    written = {name for name, value in vars(_Minimal).items() if callable(value) or name == "spec"}
    assert written == {"spec", "build", "index", "dataset", "loss", "sample_metrics"}


def test_the_default_accumulator_averages_per_sample_values_and_sums_across_ranks() -> None:
    family = _Minimal()
    a, b = family.metrics(), family.metrics()
    a.update(torch.ones(2, 1, 2, 2), {"target": torch.zeros(2, 1, 2, 2)})  # two samples of error 1
    b.update(torch.full((1, 1, 2, 2), 3.0), {"target": torch.zeros(1, 1, 2, 2)})  # one of error 9
    a.load_state(a.state() + b.state())  # what the all-reduce does
    assert a.compute() == {"mse": pytest.approx(11 / 3)}
    wrong = MeanMetrics(("mse",), lambda outputs, batch: {"mae": outputs.flatten(1).mean(1)})
    with pytest.raises(ValueError, match=r"returned \['mae'\], but the spec declares metrics \['mse'\]"):
        wrong.update(torch.ones(1, 1, 1, 1), {})


def test_the_objective_and_its_direction_come_from_the_spec() -> None:
    assert NORMALS.objective_metric == "validation:mean_angular_error" and NORMALS.objective_type == "Minimize"
    assert spec(metrics=("psnr",), objective="psnr", higher_is_better=("psnr",)).objective_type == "Maximize"
    assert set(NORMALS.hooks) <= set(HOOKS)


@pytest.mark.parametrize("out", [Output("depth", 1, 0.0, 80.0), Output("grey", 1, 0.0, 1.0),
                                 Output("flow", 2, -250.0, 250.0), Output.of(NORMALS)])
def test_json_answers_use_the_spec_output_name_channels_and_range_with_exact_sizes(out) -> None:
    rng = np.random.default_rng(0)
    pred = rng.uniform(out.low, out.high, (4, 3, out.channels)).astype(np.float32)
    pred[0, 0] = out.low
    pred[0, 1] = out.high
    body = encode([pred], False, MediaType(JSON), None, out)
    doc = json.loads(body)
    assert sorted(doc) == sorted(["shape", out.name]) and doc["shape"] == [4, 3, out.channels]
    np.testing.assert_allclose(np.array(doc[out.name]), pred, atol=5e-5)
    assert len(body) == json_record_size(4, 3, out)
    assert np.load(io.BytesIO(encode([pred], False, MediaType(NPY), None, out))).shape == pred.shape


def test_specs_and_the_launch_path_import_without_torch() -> None:
    code = ("import sys; import model.spec, model.normals.spec, tests.tinygrey.spec, train.metrics_log\n"
            "from model.spec import load_spec; load_spec('tests.tinygrey.family:TinyGrey')\n"
            "print(sorted(m for m in ('torch', 'numpy', 'model.family') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_spec_of_a_family_lives_next_to_it() -> None:
    from tests.tinygrey.family import TinyGrey

    assert load_spec("tests.tinygrey.family:TinyGrey") is TinyGrey.spec
    with pytest.raises(ValueError, match="inside a package"):
        load_spec("toplevel:Family")


def test_a_family_with_inconsistent_hooks_is_a_user_error_naming_them(tmp_path, monkeypatch) -> None:
    package = tmp_path / "badfamily"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "spec.py").write_text(
        "from dataclasses import dataclass\nfrom model.spec import FamilySpec\n"
        "@dataclass(frozen=True)\nclass C:\n    x: int = 1\n"
        "SPEC = FamilySpec(config_type=C, metrics=('mse',), objective='mse', output_name='y', hooks={'check_data'})\n")
    (package / "family.py").write_text(
        "from tests.unit.test_family_spec import _Minimal\nfrom .spec import SPEC\n"
        "class Bad(_Minimal):\n    spec = SPEC\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from train.config import parse_hyperparameters
    from train.errors import UserError

    with pytest.raises(UserError, match=r"declares hook\(s\) \['check_data'\] that the class does not write"):
        parse_hyperparameters({"model_family": "badfamily.family:Bad"})
