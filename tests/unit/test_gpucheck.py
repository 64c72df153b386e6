"""The GPU host-driver check, with detection fed from files written here (no GPU on CI)."""

from __future__ import annotations

import sys

import pytest

from container import gpucheck

PROC_470 = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.182.03  Fri Feb 24 03:29:56 UTC 2023\n"
            "GCC version:  gcc version 7.3.1 20180712 (Red Hat 7.3.1-15) (GCC)\n")
PROC_535_OPEN = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  535.183.01  Release Build\n"


@pytest.mark.parametrize(("text", "version"), [(PROC_470, "470.182.03"), (PROC_535_OPEN, "535.183.01"),
                                               ("garbage", None)])
def test_driver_version_is_read_from_proc(tmp_path, text, version):
    proc = tmp_path / "version"
    proc.write_text(text)
    assert gpucheck.host_driver_version(proc) == version
    assert gpucheck.host_driver_version(tmp_path / "absent") is None


def test_torch_cuda_version_is_read_without_importing_torch(tmp_path, monkeypatch):
    pkg = tmp_path / "torch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (pkg / "version.py").write_text("__version__ = '2.13.0'\ncuda: Optional[str] = '12.8'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert gpucheck.torch_cuda_version() == "12.8"
    (pkg / "version.py").write_text("cuda: Optional[str] = None\n")
    assert gpucheck.torch_cuda_version() is None


def test_a_cuda_12_build_on_the_default_470_driver_names_driver_need_and_fix():
    line = gpucheck.driver_problem("12.8", "470.182.03")
    assert line is not None and "\n" not in line
    assert "470.182.03" in line and "525.60.13" in line and "CUDA 12.8" in line
    assert "InferenceAmiVersion=al2-ami-sagemaker-inference-gpu-3-1" in line and "older CUDA" in line


@pytest.mark.parametrize(("cuda", "driver"), [("12.8", "535.183.01"), ("12.4", "550.90.07"), ("11.8", "470.182.03"),
                                              (None, "470.182.03"), ("12.8", None)])
def test_compatible_or_absent_driver_and_cpu_builds_pass(cuda, driver):
    assert gpucheck.driver_problem(cuda, driver) is None


def test_a_cuda_13_build_needs_a_580_driver_which_no_inference_ami_has():
    line = gpucheck.driver_problem("13.0", "550.90.07")
    assert "580.65.06" in line and "torch for CUDA 12" in line and "InferenceAmiVersion" not in line


def test_serve_exits_2_and_train_writes_the_failure_file(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(gpucheck, "torch_cuda_version", lambda: "12.8")
    monkeypatch.setattr(gpucheck, "host_driver_version", lambda: "470.182.03")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    with pytest.raises(SystemExit) as serve_exit:
        gpucheck.exit_if_driver_too_old("serve")
    assert serve_exit.value.code == 2
    assert "cannot serve: host NVIDIA driver 470.182.03" in capsys.readouterr().err
    with pytest.raises(SystemExit) as train_exit:
        gpucheck.exit_if_driver_too_old("train")
    assert train_exit.value.code == 1
    assert (tmp_path / "output" / "failure").read_text().startswith("UserError: host NVIDIA driver 470.182.03")


def test_the_entry_point_checks_before_train_and_serve(monkeypatch):
    import container.__main__ as entry

    calls = []
    monkeypatch.setattr(gpucheck, "exit_if_driver_too_old", lambda command: calls.append(command) or sys.exit(9))
    for command in ("train", "serve"):
        with pytest.raises(SystemExit):
            entry.main([command])
    assert calls == ["train", "serve"]
