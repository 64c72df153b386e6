"""Monitor a deployed endpoint with CloudWatch, from a laptop (boto3 only; Pillow only for the PNG chart).

    python -m container.aws.monitor status --name normals [--hours 3] [--chart normals.png]
    python -m container.aws.monitor setup  --name normals [--latency-p99-ms 1000] [--error-rate 0.01]
                                   [--drift-threshold 1.1] [--alarm-topic arn:aws:sns:...]
    python -m container.aws.monitor report --name normals --image URI --capture s3://b/capture/normals/ \
                                   --model-data s3://b/.../model.tar.gz --output s3://b/drift/ [--wait]
    python -m container.aws.monitor remove --name normals

``status`` prints the last hours of the endpoint's metrics as a table (and a PNG chart). ``setup`` creates,
idempotently, the CloudWatch Logs metric filters on the endpoint's log group, three alarms and a dashboard
(names in container/aws/cloudwatch_plan.py); a rerun changes only what differs. ``remove`` deletes all of them;
``python -m container.aws.deploy delete`` calls it too. What is already gone is reported, not an error. ``report``
runs the image's ``monitor`` job as a SageMaker Processing job over the data-capture prefix.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from container.aws.cloudwatch_plan import DEFAULT_DRIFT_THRESHOLD, MonitorPlan
from container.aws.common import ShipError, explain, is_not_found, make_session, run_cli
from container.aws.drift_job import DriftJob
from container.aws.drift_job import start as start_drift_job
from container.aws.endpoint_metrics import choose_period, draw_chart, format_table, read_metrics


def _say(log: TextIO | None, message: str) -> None:
    print(f"==> {message}", file=log or sys.stderr)


def _aws(action: str, call: Callable[[], Any]) -> Any:
    try:
        return call()
    except ShipError:
        raise
    except Exception as exc:
        raise explain(exc, action) from exc


def _existing_filters(logs: Any, plan: MonitorPlan) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    kwargs = {"logGroupName": plan.log_group, "filterNamePrefix": plan.prefix}
    while True:
        page = logs.describe_metric_filters(**kwargs)
        for f in page.get("metricFilters", []):
            found[f["filterName"]] = f
        if not page.get("nextToken"):
            return found
        kwargs["nextToken"] = page["nextToken"]


def _same_filter(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("metricName", "metricNamespace", "metricValue", "unit")
    have = [{k: t.get(k) for k in keys} for t in existing.get("metricTransformations", [])]
    return existing.get("filterPattern") == wanted["filterPattern"] and have == [
        {k: t.get(k) for k in keys} for t in wanted["metricTransformations"]]


def _check_log_group(logs: Any, plan: MonitorPlan) -> None:
    groups = logs.describe_log_groups(logGroupNamePrefix=plan.log_group).get("logGroups", [])
    if not any(g["logGroupName"] == plan.log_group for g in groups):
        raise ShipError(f"log group {plan.log_group} does not exist: endpoint {plan.name} has not logged yet "
                        "(or the name is wrong)", "deploy it with `python -m container.aws.deploy deploy --name "
                        f"{plan.name} ...`, wait for InService, then rerun setup")


def setup(session: Any, plan: MonitorPlan, *, log: TextIO | None = None) -> dict[str, list[str]]:
    """Create or update what differs; returns {"created": [...], "unchanged": [...]} by resource name."""
    logs, cw = session.client("logs"), session.client("cloudwatch")
    result: dict[str, list[str]] = {"created": [], "unchanged": []}
    _aws(f"reading log group {plan.log_group}", lambda: _check_log_group(logs, plan))
    existing = _aws("listing metric filters", lambda: _existing_filters(logs, plan))
    _put_changed("metric filter", plan.metric_filter_requests(), "filterName", existing, _same_filter,
                 logs.put_metric_filter, result)
    current = {a["AlarmName"]: a for a in _describe_alarms(cw, plan)}
    _put_changed("alarm", plan.alarm_requests(), "AlarmName", current, _same_alarm, cw.put_metric_alarm, result)
    arns = [a["AlarmArn"] for a in _describe_alarms(cw, plan)]
    dashboard = plan.dashboard_request(session.region_name, sorted(arns))
    if _dashboard_body(cw, plan) == json.loads(dashboard["DashboardBody"]):
        result["unchanged"].append(plan.dashboard_name)
    else:
        _aws(f"creating dashboard {plan.dashboard_name}", lambda: cw.put_dashboard(**dashboard))
        result["created"].append(plan.dashboard_name)
    for name in result["created"]:
        _say(log, f"{name}: created or updated")
    if result["unchanged"]:
        _say(log, f"{len(result['unchanged'])} already as wanted: {', '.join(result['unchanged'])}")
    return result


def _put_changed(kind: str, requests: Sequence[dict[str, Any]], name_key: str, current: dict[str, Any],
                 same: Callable[[Any, dict[str, Any]], bool], put: Callable[..., Any],
                 result: dict[str, list[str]]) -> None:
    """Put each request whose resource is missing or differs; record every name as created or unchanged."""
    for request in requests:
        name = request[name_key]
        if name in current and same(current[name], request):
            result["unchanged"].append(name)
            continue
        _aws(f"creating {kind} {name}", lambda r=request: put(**r))
        result["created"].append(name)


def _describe_alarms(cw: Any, plan: MonitorPlan) -> list[dict[str, Any]]:
    page = _aws("listing alarms", lambda: cw.describe_alarms(AlarmNames=plan.alarm_names))
    return [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]


def _same_alarm(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(current.get(k) == v for k, v in wanted.items() if k != "Metrics") and (
        "Metrics" not in wanted or len(current.get("Metrics", [])) == len(wanted["Metrics"]))


def _dashboard_body(cw: Any, plan: MonitorPlan) -> Any:
    try:
        return json.loads(cw.get_dashboard(DashboardName=plan.dashboard_name)["DashboardBody"])
    except Exception as exc:
        if is_not_found(exc) or "DashboardNotFound" in str(exc) or "does not exist" in str(exc):
            return None
        raise explain(exc, f"reading dashboard {plan.dashboard_name}") from exc


def remove(session: Any, plan: MonitorPlan, *, log: TextIO | None = None) -> list[str]:
    """Delete the filters, alarms and dashboard that exist; returns the names deleted."""
    logs, cw = session.client("logs"), session.client("cloudwatch")
    deleted: list[str] = []
    try:
        filters = _existing_filters(logs, plan)
    except Exception as exc:
        if not is_not_found(exc):
            raise explain(exc, "listing metric filters") from exc
        filters = {}
    for name in plan.filter_names:
        if name in filters:
            _aws(f"deleting metric filter {name}",
                 lambda n=name: logs.delete_metric_filter(logGroupName=plan.log_group, filterName=n))
            deleted.append(name)
    alarms = [a["AlarmName"] for a in _describe_alarms(cw, plan)]
    if alarms:
        _aws("deleting alarms", lambda: cw.delete_alarms(AlarmNames=alarms))
        deleted += alarms
    boards = _aws("listing dashboards", lambda: cw.list_dashboards(DashboardNamePrefix=plan.dashboard_name))
    if any(d["DashboardName"] == plan.dashboard_name for d in boards.get("DashboardEntries", [])):
        _aws("deleting the dashboard", lambda: cw.delete_dashboards(DashboardNames=[plan.dashboard_name]))
        deleted.append(plan.dashboard_name)
    _say(log, f"monitoring of {plan.name}: removed {len(deleted)} ({', '.join(deleted) or 'nothing was there'})")
    return deleted


def status(session: Any, plan: MonitorPlan, hours: float, chart: Path | None, *,
           now: dt.datetime | None = None, out: TextIO | None = None) -> dict[str, Any]:
    end = (now or dt.datetime.now(dt.UTC)).replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=hours)
    period = choose_period(hours)
    cw = session.client("cloudwatch")
    data = _aws("reading CloudWatch metrics", lambda: read_metrics(cw, plan, start, end, period))
    print(f"endpoint {plan.name}, {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC, {period // 60} min periods",
          file=out or sys.stdout)
    print(format_table(data), file=out or sys.stdout)
    if chart is not None:
        image = draw_chart(data, start, end, f"{plan.name}: last {hours:g} h ({period // 60} min periods)")
        if image is None:
            _say(None, "no chart: Pillow is not installed (pip install pillow)")
        else:
            image.save(chart)
            _say(None, f"chart saved to {chart}")
    return data


def _report(args: argparse.Namespace, session: Any) -> int:
    role = args.role or os.environ.get("SAGEMAKER_ROLE_ARN")
    if not role:
        raise ShipError("missing --role", "pass --role arn:aws:iam::ACCOUNT:role/NAME or export SAGEMAKER_ROLE_ARN",
                        exit_code=2)
    job = DriftJob(args.name, args.image, role, args.capture, args.model_data, args.output,
                   instance_type=args.instance_type, job_name=args.job_name)
    session = session or make_session(args.region)
    desc = start_drift_job(session, job, wait=args.wait, interval_s=args.poll_seconds, log=sys.stderr)
    print(f"==> {desc.get('ProcessingJobName')} is {desc.get('ProcessingJobStatus')}", file=sys.stderr)
    print(args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m container.aws.monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--region", help="AWS region (default: AWS_REGION, AWS_DEFAULT_REGION, ~/.aws/config)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("status", help="print the last hours of the endpoint's metrics (and a PNG chart)")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--hours", type=float, default=3.0)
    p.add_argument("--chart", type=Path, help="also draw the metrics into this PNG file")
    p = sub.add_parser("setup", help="create metric filters, alarms and a dashboard (idempotent)")
    p.add_argument("--name", required=True, help="endpoint name")
    p.add_argument("--latency-p99-ms", type=float, default=1000.0, help="alarm when p99 ModelLatency is above")
    p.add_argument("--error-rate", type=float, default=0.01, help="alarm when the 5xx share is above (0-1)")
    p.add_argument("--drift-threshold", type=float, default=DEFAULT_DRIFT_THRESHOLD,
                   help="alarm when the mean per-image input drift score is above (README: Monitoring)")
    p.add_argument("--period", type=int, default=300, help="alarm period in seconds (3 periods in a row alarm)")
    p.add_argument("--alarm-topic", help="SNS topic ARN notified on ALARM and OK")
    p.add_argument("--dry-run", action="store_true", help="print the requests and stop")
    p = sub.add_parser("report", help="run the image's monitor job as a SageMaker Processing job over captures")
    p.add_argument("--name", required=True, help="endpoint name (names the job)")
    p.add_argument("--image", required=True, help="image URI (the last line of ./build_and_push.sh)")
    p.add_argument("--capture", required=True, help="data-capture S3 prefix, e.g. s3://b/capture/NAME/AllTraffic/")
    p.add_argument("--model-data", required=True, help="s3://.../model.tar.gz of the deployed model (the baseline)")
    p.add_argument("--output", required=True, help="S3 prefix for drift_report.json and drift_report.png")
    p.add_argument("--role", help="SageMaker execution role ARN (default: $SAGEMAKER_ROLE_ARN)")
    p.add_argument("--instance-type", default="ml.m5.large")
    p.add_argument("--job-name", default="", help="default: NAME-drift-YYYYmmdd-HHMMSS")
    p.add_argument("--wait", action="store_true")
    p.add_argument("--poll-seconds", type=float, default=30, help=argparse.SUPPRESS)
    p = sub.add_parser("remove", help="delete the metric filters, alarms and dashboard")
    p.add_argument("--name", required=True, help="endpoint name")
    return parser


def main(argv: Sequence[str] | None = None, session: Any = None, now: dt.datetime | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "setup":
        if not 0 < args.error_rate < 1 or args.latency_p99_ms <= 0 or args.drift_threshold <= 0 or args.period < 60:
            raise ShipError("--error-rate must be in (0, 1), --latency-p99-ms and --drift-threshold positive, "
                            "--period at least 60", "fix the flag values (see --help)", exit_code=2)
        plan = MonitorPlan(args.name, args.latency_p99_ms, args.error_rate, args.drift_threshold, args.period,
                           alarm_topic=args.alarm_topic)
        if args.dry_run:
            print(json.dumps({"PutMetricFilter": plan.metric_filter_requests(),
                              "PutMetricAlarm": plan.alarm_requests()}, indent=2))
            return 0
        session = session or make_session(args.region)
        setup(session, plan)
        print(f"https://console.aws.amazon.com/cloudwatch/home?region={session.region_name}"
              f"#dashboards:name={plan.dashboard_name}")
        return 0
    if args.command == "report":
        return _report(args, session)
    session = session or make_session(args.region)
    plan = MonitorPlan(args.name)
    if args.command == "remove":
        remove(session, plan)
        return 0
    if args.hours <= 0:
        raise ShipError("--hours must be positive", "pass e.g. --hours 3", exit_code=2)
    status(session, plan, args.hours, args.chart, now=now)
    return 0


if __name__ == "__main__":
    run_cli(main)
