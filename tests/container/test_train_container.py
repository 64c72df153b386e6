"""`docker run IMAGE train` against SageMaker-style /opt/ml trees, as a training job would run it."""

from __future__ import annotations

import json
import re

from tests.container.mltree import TINY_HYPERPARAMETERS, finish, make_tree, start
from tests.polling import wait_until
from train import metrics_log


def test_train_leaves_a_flat_servable_model_dir_offline(docker_client, image, synthetic_channel, tmp_path):
    tree = make_tree(tmp_path / "ml", TINY_HYPERPARAMETERS, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, image, tree, network_mode="none"))
    assert code == 0, logs
    assert sorted(p.name for p in tree.model_dir.iterdir()) == ["drift_baseline.json", "model.json", "model.pt"]
    meta = json.loads((tree.model_dir / "model.json").read_text())
    assert meta["format_version"] == 1 and meta["family"] == "model.normals.family:SurfaceNormals"
    assert (tree.root / "output" / "success").exists() and not tree.failure.exists()
    assert (tree.output_data / "metrics.json").exists() and list(tree.output_data.glob("panel_*.png"))
    assert re.search(r"step \d+/\d+ epoch \d+/\d+ loss [0-9.]+ lr \S+ images/s [0-9.]+ eta \d\d:\d\d:\d\d", logs)


def test_metric_definitions_read_real_training_output(trained_tree, docker_client, image, synthetic_channel, tmp_path):
    tree = make_tree(tmp_path / "ml", TINY_HYPERPARAMETERS, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, image, tree))
    assert code == 0, logs
    for definition in metrics_log.load_definitions():
        values = re.findall(definition["Regex"], logs)
        if definition["Name"].startswith("test:"):
            assert values == [], definition  # no test channel in this run
        else:
            assert len(values) == 2, (definition, values)  # one per epoch
            assert all(float(v) >= 0 for v in values)


def test_no_command_means_train(docker_client, image, synthetic_channel, tmp_path):
    # SageMaker SDK v3 local mode starts the image without a command.
    tree = make_tree(tmp_path / "ml", {**TINY_HYPERPARAMETERS, "epochs": "1"}, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, image, tree, command=None))
    assert code == 0, logs
    assert (tree.model_dir / "model.pt").exists()


def test_bad_hyperparameter_fails_with_an_actionable_reason(docker_client, image, synthetic_channel, tmp_path):
    tree = make_tree(tmp_path / "ml", {**TINY_HYPERPARAMETERS, "epochs": "many"}, {"train": synthetic_channel})
    code, logs = finish(start(docker_client, image, tree))
    assert code == 1, logs
    reason = tree.failure.read_text()
    first = reason.splitlines()[0]
    assert first.startswith("UserError: hyperparameter 'epochs' has the bad value 'many'")
    assert "Fix:" in first and len(reason) <= 1024
    assert "Traceback" not in reason


def test_empty_train_channel_fails_clearly(docker_client, image, tmp_path):
    tree = make_tree(tmp_path / "ml", TINY_HYPERPARAMETERS, {"train": None})
    code, _ = finish(start(docker_client, image, tree))
    assert code == 1
    assert "channel 'train'" in tree.failure.read_text() and "is empty" in tree.failure.read_text()


def test_missing_config_files_are_named(docker_client, image, tmp_path):
    tree = make_tree(tmp_path / "ml", TINY_HYPERPARAMETERS, {"train": None})
    (tree.root / "input" / "config" / "resourceconfig.json").unlink()
    code, _ = finish(start(docker_client, image, tree))
    assert code == 1
    assert "lacks resourceconfig.json" in tree.failure.read_text()


def test_sigterm_checkpoints_and_a_second_run_resumes(docker_client, image, synthetic_channel, tmp_path):
    hps = {**TINY_HYPERPARAMETERS, "epochs": "40", "checkpoint_steps": "0", "log_every_steps": "1"}
    tree = make_tree(tmp_path / "ml", hps, {"train": synthetic_channel})
    container = start(docker_client, image, tree)
    try:
        wait_until(lambda: b"epoch 2/40" in container.logs(), timeout=120, what="training past epoch 1", interval=0.2)
        container.kill(signal="SIGTERM")
        code, logs = finish(container, timeout=120)
    except BaseException:
        container.remove(force=True)
        raise
    assert code == 143, logs
    assert tree.failure.read_text().startswith("Stopped: training stopped by SIGTERM")
    saved = sorted(tree.checkpoints.glob("checkpoint-step*.pt"))
    assert saved, logs
    stopped_at = int(re.search(r"step(\d+)", saved[-1].name).group(1))

    tree.failure.unlink()
    code, logs = finish(start(docker_client, image, tree), timeout=600)
    assert code == 0, logs
    assert re.search(rf"resumed from /opt/ml/checkpoints/checkpoint-step0*{stopped_at}\.pt", logs)
    assert (tree.model_dir / "model.pt").exists()
