"""The laptop monitoring CLI: torch/numpy/Pillow-free import, names derived from the endpoint, dry run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from container.aws import monitor
from container.aws.cloudwatch_plan import MonitorPlan
from container.aws.common import ShipError
from container.aws.endpoint_metrics import choose_period

REPO = Path(__file__).resolve().parents[2]


def test_the_monitor_cli_imports_without_torch_numpy_pillow_or_the_server() -> None:
    code = ("import sys, container.aws.monitor\n"
            "heavy = ('torch', 'numpy', 'PIL', 'flask', 'model.drift', 'serve.app')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_name_derives_from_the_endpoint_name() -> None:
    plan = MonitorPlan("shop-a")
    names = [*plan.filter_names, *plan.alarm_names, plan.dashboard_name]
    assert all(n.startswith("shop-a-byoc") for n in names) and len(set(names)) == 11
    assert plan.log_group == "/aws/sagemaker/Endpoints/shop-a" and plan.namespace == "sagemaker-byoc/shop-a"
    assert {f["logGroupName"] for f in plan.metric_filter_requests()} == {plan.log_group}


def test_periods_keep_the_table_at_most_36_rows() -> None:
    assert [choose_period(h) for h in (1, 3, 6, 24, 24 * 7)] == [300, 300, 900, 3600, 21600]


def test_dry_run_prints_the_requests_without_aws(capsys) -> None:
    assert monitor.main(["setup", "--name", "shop-a", "--dry-run"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["PutMetricFilter"]) == 7 and len(doc["PutMetricAlarm"]) == 3


def test_bad_thresholds_are_refused_before_any_call() -> None:
    with pytest.raises(ShipError, match="--error-rate must be in"):
        monitor.main(["setup", "--name", "shop-a", "--error-rate", "5"])
