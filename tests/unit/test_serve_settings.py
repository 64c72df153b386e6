from dataclasses import replace
from pathlib import Path

import pytest

from container.serving import resolve_lanes, resolve_workers, torch_threads, worker_device
from serve.batching import batching_defaults
from serve.settings import ServeSettings, SettingsError, settings_from_env


def test_defaults_follow_the_sagemaker_contract():
    s = settings_from_env({})
    assert s.port == 8080
    assert s.timeout_s == 60
    assert s.max_payload_bytes == 6 * 1024 * 1024
    assert s.model_dir == Path("/opt/ml/model")
    assert s.batch_mode is False
    assert s.batch_strategy == "MultiRecord"


def test_sagemaker_spelling_wins_over_the_sample_spelling():
    env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "3", "MODEL_SERVER_WORKERS": "5", "MODEL_SERVER_TIMEOUT": "9"}
    s = settings_from_env(env)
    assert s.workers == 3
    assert s.timeout_s == 9


@pytest.mark.parametrize("value", ["True", "true", "TRUE", "1"])
def test_sagemaker_batch_is_case_insensitive(value):
    s = settings_from_env({"SAGEMAKER_BATCH": value})
    assert s.batch_mode is True
    assert s.timeout_s == 600  # batch transform's invocation timeout default


@pytest.mark.parametrize(("raw", "expected"), [("MULTI_RECORD", "MultiRecord"), ("SingleRecord", "SingleRecord"),
                                               ("single_record", "SingleRecord")])
def test_batch_strategy_is_reported_in_the_spelling_local_mode_accepts(raw, expected):
    assert settings_from_env({"SAGEMAKER_BATCH_STRATEGY": raw}).batch_strategy == expected


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "two"}, "SAGEMAKER_MODEL_SERVER_WORKERS='two' is not an integer"),
        ({"SAGEMAKER_MODEL_SERVER_WORKERS": "0"}, "out of range"),
        ({"SAGEMAKER_BIND_TO_PORT": "99999"}, "SAGEMAKER_BIND_TO_PORT"),
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "101"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB"),
        ({"SAGEMAKER_BATCH": "maybe"}, "not a boolean"),
        ({"SERVE_PRECISION": "fp8"}, "SERVE_PRECISION"),
        ({"SERVE_DEVICE": "tpu"}, "SERVE_DEVICE"),
        ({"SERVE_MAX_BATCH_DELAY_MS": "soon"}, "not a number"),
    ],
)
def test_bad_values_fail_with_the_variable_name(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        settings_from_env(env)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        settings_from_env({}).port = 1  # type: ignore[misc]


def test_cpu_does_not_batch_by_default_and_gpu_does():
    assert batching_defaults("cpu") == (1, 0.0)
    assert batching_defaults("cuda")[0] > 1


def test_default_layout_two_workers_per_gpu_else_one_worker_with_a_lane_per_core():
    s = ServeSettings()
    assert resolve_workers(s, gpus=4, cpus=32) == 8 and resolve_lanes(s, 8, gpus=4, cpus=32) == 1
    assert resolve_workers(s, gpus=1, cpus=4) == 2  # e.g. ml.g5.xlarge
    assert resolve_workers(s, gpus=4, cpus=8) == 4  # fewer than 2 cores per worker: one per GPU
    assert resolve_workers(s, gpus=0, cpus=2) == 1 and resolve_lanes(s, 1, gpus=0, cpus=2) == 2
    assert resolve_workers(s, gpus=0, cpus=64) == 1 and resolve_lanes(s, 1, gpus=0, cpus=64) == 4
    assert resolve_workers(ServeSettings(device="cpu"), gpus=2, cpus=8) == 1
    assert resolve_workers(ServeSettings(workers=7), gpus=4, cpus=2) == 7
    # Workers set by hand share the default lanes: 2 workers on 2 cores is the old 2 x 1 layout.
    assert resolve_lanes(ServeSettings(workers=2), 2, gpus=0, cpus=2) == 1
    assert resolve_lanes(ServeSettings(workers=3), 3, gpus=0, cpus=2) == 1
    assert resolve_lanes(ServeSettings(inference_threads=3), 1, gpus=1, cpus=2) == 3


def test_cpu_threads_are_shared_between_workers_and_lanes():
    assert torch_threads(ServeSettings(), workers=2, cpus=2) == 1
    assert torch_threads(ServeSettings(), workers=1, cpus=2, lanes=2) == 1
    assert torch_threads(ServeSettings(), workers=1, cpus=16, lanes=4) == 4
    assert torch_threads(ServeSettings(), workers=4, cpus=16) == 4
    assert torch_threads(ServeSettings(torch_threads=3), workers=2, cpus=2) == 3


def test_resolved_layout_sizes_http_threads_and_the_pixel_budget_per_lane():
    s = ServeSettings(max_image_pixels=1000)
    assert s.with_workers(1, 2).http_threads == 64 and s.with_workers(2, 1).http_threads == 32
    assert s.with_workers(1, 2).worker_pixels == 2000
    assert replace(s, http_threads=8).with_workers(1, 4).http_threads == 8
    assert replace(s, worker_max_pixels=1500).with_workers(1, 2).worker_pixels == 1500
    assert settings_from_env({"SERVE_INFERENCE_THREADS": "3"}).inference_threads == 3
    with pytest.raises(SettingsError, match="SERVE_INFERENCE_THREADS"):
        settings_from_env({"SERVE_INFERENCE_THREADS": "0"})


def test_workers_take_gpus_round_robin():
    s = ServeSettings()
    assert [worker_device(s, i, gpus=2) for i in range(4)] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert worker_device(s, 3, gpus=0) == "cpu"
    assert worker_device(ServeSettings(device="cuda:1"), 0, gpus=2) == "cuda:1"


def test_help_states_the_layout_defaults_the_code_uses(capsys):
    from container.serving import main
    from serve.settings import MAX_DEFAULT_CPU_LANES

    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert f"on CPU min(CPUs, {MAX_DEFAULT_CPU_LANES}) / workers" in text
    assert "SERVE_INFERENCE_THREADS" in text
    assert resolve_lanes(ServeSettings(), 1, gpus=0, cpus=64) == MAX_DEFAULT_CPU_LANES


def test_max_payload_zero_in_batch_transform_means_the_whole_object():
    s = settings_from_env({"SAGEMAKER_BATCH": "true", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"})
    assert s.max_payload_mb == 0  # reported back to /execution-parameters as set
    assert s.max_payload_bytes == 1024 * 1024 * 1024
    with pytest.raises(SettingsError, match="SAGEMAKER_MAX_PAYLOAD_IN_MB"):
        settings_from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"})  # a real-time endpoint needs a real limit


def test_batch_transform_limits_follow_the_payload_not_a_record_count():
    s = settings_from_env({"SAGEMAKER_BATCH": "True", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100"})
    assert (s.max_images, s.max_request_pixels, s.max_response_bytes) == (None, None, None)
    assert s.full_answers
    realtime = settings_from_env({})
    assert realtime.max_images == 64
    assert realtime.max_response_bytes == 6 * 1024 * 1024
    assert realtime.max_request_pixels == 4 * 2048 * 2048


@pytest.mark.parametrize(("kind", "payload_mb", "response", "timeout"),
                         [("realtime", 6, 6 * 2**20, 60), ("serverless", 4, 4 * 2**20, 60), ("async", 1024, None, 900)])
def test_endpoint_type_sets_sagemakers_limits(kind, payload_mb, response, timeout):
    s = settings_from_env({"SERVE_ENDPOINT_TYPE": kind})
    assert s.max_payload_bytes == payload_mb * 2**20
    assert s.max_response_bytes == response
    assert s.timeout_s == timeout


def test_limits_can_be_lifted_with_zero_and_the_worker_budget_must_fit_one_image():
    s = settings_from_env({"SERVE_MAX_RESPONSE_MB": "0", "SERVE_MAX_IMAGES": "0", "SERVE_MAX_REQUEST_PIXELS": "0"})
    assert (s.max_images, s.max_request_pixels, s.max_response_bytes) == (None, None, None)
    assert settings_from_env({}).worker_pixels == 2048 * 2048
    with pytest.raises(SettingsError, match="SERVE_WORKER_MAX_PIXELS"):
        settings_from_env({"SERVE_WORKER_MAX_PIXELS": "1000", "SERVE_MAX_IMAGE_PIXELS": "2000"})


def test_cpu_pixel_limits_shrink_to_the_containers_memory_unless_set():
    from container.serving import fit_to_memory
    from serve.memory import worst_case_bytes

    s = ServeSettings(workers=2)
    small = fit_to_memory(s, on_cpu=True, memory=4 << 30)
    assert small.max_image_pixels == small.worker_pixels < s.max_image_pixels
    assert 2 * worst_case_bytes(small.worker_pixels) <= 4 << 30  # both workers at their worst fit
    assert fit_to_memory(s, on_cpu=True, memory=64 << 30) == s
    explicit = replace(s, explicit_pixel_limits=True)
    assert fit_to_memory(explicit, on_cpu=True, memory=4 << 30) == explicit
    assert fit_to_memory(s, on_cpu=False, memory=4 << 30) == s
    with pytest.raises(ValueError, match="with_workers"):
        fit_to_memory(ServeSettings(), on_cpu=True, memory=4 << 30)
    # One worker of two inference threads: its budget and its extra HTTP threads' bodies fit too.
    one = ServeSettings().with_workers(1, 2)
    fitted = fit_to_memory(one, on_cpu=True, memory=4 << 30)
    assert fitted.worker_pixels < one.worker_pixels
    assert worst_case_bytes(fitted.worker_pixels, lanes=2) <= 4 << 30
    assert worst_case_bytes(fitted.worker_pixels, lanes=2) > worst_case_bytes(fitted.worker_pixels)


def test_container_memory_prefers_the_cgroup_limit(tmp_path):
    from serve.memory import container_memory

    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    limit, unlimited = tmp_path / "memory.max", tmp_path / "unlimited"
    limit.write_text("3221225472\n")
    unlimited.write_text("max\n")
    assert container_memory(meminfo, (limit,)) == 3 << 30
    assert container_memory(meminfo, (unlimited, tmp_path / "absent")) == 16384000 * 1024


def test_an_unknown_default_accept_is_refused_when_the_settings_are_made_naming_the_types():
    for make in (lambda: settings_from_env({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv"}),
                 lambda: ServeSettings(default_accept="text/csv")):
        with pytest.raises(SettingsError, match=r"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT='text/csv'.*image/png"):
            make()
    parsed = settings_from_env({"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "Application/X-NPY; dtype=float16"})
    assert str(parsed.default_answer_type) == "application/x-npy; dtype=float16"
    assert ServeSettings().default_answer_type is None


@pytest.mark.parametrize(
    ("env", "explicit"),
    [({}, False), ({"SERVE_MAX_IMAGE_PIXELS": " "}, False), ({"SERVE_MAX_IMAGE_PIXELS": "1000"}, True),
     ({"SERVE_WORKER_MAX_PIXELS": "5000000"}, True)],
)
def test_settings_record_whether_the_pixel_limits_were_set_by_the_user(env, explicit):
    assert settings_from_env(env).explicit_pixel_limits is explicit


def test_parsing_the_serving_environment_imports_neither_torch_nor_the_http_stack():
    # The serving master parses the settings before forking; torch and werkzeug belong to the workers.
    import subprocess
    import sys

    code = ("import sys; from serve.settings import settings_from_env; settings_from_env({}); "
            "print(sorted(m for m in ('torch', 'numpy', 'werkzeug', 'flask') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"
