"""container.aws.monitor against moto: exact CloudWatch requests, idempotent reruns, teardown, metric reads."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from PIL import Image

from container.aws import cloudwatch_plan, deploy, monitor
from container.aws.common import ShipError
from model import drift

pytestmark = pytest.mark.aws
NAME = "normals"
GROUP = "/aws/sagemaker/Endpoints/normals"
DIMS = [{"Name": "EndpointName", "Value": NAME}, {"Name": "VariantName", "Value": "AllTraffic"}]


@pytest.fixture
def endpoint_logs(aws):
    """The log group SageMaker creates when the endpoint's container starts."""
    aws.session().client("logs").create_log_group(logGroupName=GROUP)
    return aws


def _puts(aws, operation):
    return [p for _, op, p in aws.recorder.calls if op == operation]


def test_setup_sends_the_filters_alarms_and_dashboard_named_after_the_endpoint(endpoint_logs, capsys):
    aws = endpoint_logs
    assert monitor.main(["setup", "--name", NAME, "--latency-p99-ms", "800", "--error-rate", "0.02",
                         "--alarm-topic", "arn:aws:sns:us-east-1:123456789012:ops"], session=aws.session()) == 0

    filters = _puts(aws, "PutMetricFilter")
    assert [f["filterName"] for f in filters] == [
        "normals-byoc-requests", "normals-byoc-latency", "normals-byoc-errors-4xx", "normals-byoc-errors-5xx",
        "normals-byoc-image-pixels", "normals-byoc-input-drift", "normals-byoc-prediction-drift"]
    assert {f["logGroupName"] for f in filters} == {GROUP}
    assert filters[1] == {
        "logGroupName": GROUP, "filterName": "normals-byoc-latency",
        "filterPattern": '{ $.path = "/invocations" && $.latency_ms >= 0 }',
        "metricTransformations": [{"metricName": "LatencyMs", "metricNamespace": "sagemaker-byoc/normals",
                                   "metricValue": "$.latency_ms", "unit": "Milliseconds"}]}
    assert filters[3]["filterPattern"] == '{ $.path = "/invocations" && $.status >= 500 }'
    assert filters[5]["metricTransformations"][0]["metricValue"] == "$.input_drift"

    latency, errors, drift_alarm = _puts(aws, "PutMetricAlarm")
    topic = ["arn:aws:sns:us-east-1:123456789012:ops"]
    assert latency == {
        "AlarmName": "normals-byoc-alarm-p99-latency",
        "AlarmDescription": "normals: p99 ModelLatency over 800 ms for 15 min",
        "ComparisonOperator": "GreaterThanThreshold", "Threshold": 800000.0, "EvaluationPeriods": 3,
        "DatapointsToAlarm": 3, "TreatMissingData": "notBreaching", "Namespace": "AWS/SageMaker",
        "MetricName": "ModelLatency", "Dimensions": DIMS, "ExtendedStatistic": "p99", "Period": 300,
        "Unit": "Microseconds", "AlarmActions": topic, "OKActions": topic}
    assert errors["Threshold"] == 0.02
    assert [m["Id"] for m in errors["Metrics"]] == ["errors", "invocations", "rate"]
    assert errors["Metrics"][2]["Expression"] == "IF(invocations > 0, errors / invocations, 0)"
    assert errors["Metrics"][0]["MetricStat"]["Metric"]["MetricName"] == "Invocation5XXErrors"
    assert (drift_alarm["AlarmName"], drift_alarm["Namespace"], drift_alarm["MetricName"], drift_alarm["Statistic"],
            drift_alarm["Threshold"]) == ("normals-byoc-alarm-input-drift", "sagemaker-byoc/normals", "InputDrift",
                                          "Average", drift.ALERT_PER_IMAGE)

    board = aws.recorder.only("PutDashboard")
    assert board["DashboardName"] == "normals-byoc"
    widgets = json.loads(board["DashboardBody"])["widgets"]
    assert [w["properties"]["title"] for w in widgets][:2] == ["Invocations and errors (sum per period)",
                                                               "Latency (microseconds)"]
    assert sorted(widgets[-1]["properties"]["alarms"]) == sorted(
        f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{n}"
        for n in ("normals-byoc-alarm-p99-latency", "normals-byoc-alarm-error-rate", "normals-byoc-alarm-input-drift"))
    assert capsys.readouterr().out.strip().endswith("#dashboards:name=normals-byoc")


def test_the_default_drift_threshold_is_the_measured_per_image_alert_level() -> None:
    assert cloudwatch_plan.DEFAULT_DRIFT_THRESHOLD == drift.ALERT_PER_IMAGE


def test_rerunning_setup_changes_nothing_and_a_new_threshold_changes_only_its_alarm(endpoint_logs, capsys):
    aws = endpoint_logs
    monitor.main(["setup", "--name", NAME], session=aws.session())
    aws.recorder.calls.clear()

    monitor.main(["setup", "--name", NAME], session=aws.session())
    assert not [op for op in aws.recorder.ops() if op.startswith(("Put", "Delete"))]
    assert "11 already as wanted" in capsys.readouterr().err

    monitor.main(["setup", "--name", NAME, "--latency-p99-ms", "250"], session=aws.session())
    assert [p["AlarmName"] for p in _puts(aws, "PutMetricAlarm")] == ["normals-byoc-alarm-p99-latency"]
    assert len(_puts(aws, "PutDashboard")) == 1  # the threshold line on the latency widget moved
    assert not _puts(aws, "PutMetricFilter")


def test_setup_before_the_endpoint_logged_says_how_to_fix_it(aws):
    with pytest.raises(ShipError, match=r"does not exist.*has not logged yet"):
        monitor.main(["setup", "--name", NAME], session=aws.session())
    assert not [op for op in aws.recorder.ops() if op.startswith("Put")]


def test_remove_leaves_nothing_and_a_second_remove_finds_nothing(endpoint_logs, capsys):
    aws = endpoint_logs
    monitor.main(["setup", "--name", NAME], session=aws.session())
    capsys.readouterr()

    assert monitor.main(["remove", "--name", NAME], session=aws.session()) == 0
    logs, cw = aws.session().client("logs"), aws.session().client("cloudwatch")
    assert logs.describe_metric_filters(logGroupName=GROUP)["metricFilters"] == []
    assert cw.describe_alarms(AlarmNamePrefix=NAME)["MetricAlarms"] == []
    assert cw.list_dashboards(DashboardNamePrefix=NAME)["DashboardEntries"] == []
    assert "removed 11" in capsys.readouterr().err

    assert monitor.main(["remove", "--name", NAME], session=aws.session()) == 0
    assert "removed 0 (nothing was there)" in capsys.readouterr().err


def test_deleting_the_endpoint_also_removes_its_monitoring(endpoint_logs):
    aws = endpoint_logs
    monitor.main(["setup", "--name", NAME], session=aws.session())
    deploy.main(["--poll-seconds", "0", "delete", "--name", NAME], session=aws.session())
    assert aws.session().client("cloudwatch").describe_alarms(AlarmNamePrefix=NAME)["MetricAlarms"] == []
    assert aws.session().client("logs").describe_metric_filters(logGroupName=GROUP)["metricFilters"] == []


def test_status_reads_back_the_metrics_put_there_as_a_table_and_a_chart(aws, tmp_path, capsys):
    cw = aws.session().client("cloudwatch")
    now = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)
    for minutes_ago, invocations, cpu in ((50, 120, 35.0), (20, 300, 80.0)):
        when = now - dt.timedelta(minutes=minutes_ago)
        cw.put_metric_data(Namespace="AWS/SageMaker", MetricData=[
            {"MetricName": "Invocations", "Dimensions": DIMS, "Timestamp": when, "Value": invocations}])
        cw.put_metric_data(Namespace="/aws/sagemaker/Endpoints", MetricData=[
            {"MetricName": "CPUUtilization", "Dimensions": DIMS, "Timestamp": when, "Value": cpu}])
    cw.put_metric_data(Namespace="sagemaker-byoc/normals", MetricData=[
        {"MetricName": "InputDrift", "Timestamp": now - dt.timedelta(minutes=20), "Value": 0.75}])
    chart = tmp_path / "normals.png"

    assert monitor.main(["status", "--name", NAME, "--hours", "1", "--chart", str(chart)], session=aws.session(),
                        now=now) == 0

    request = aws.recorder.only("GetMetricData")
    assert request["StartTime"] == now - dt.timedelta(hours=1) and request["EndTime"] == now
    queries = {q["Id"]: q["MetricStat"] for q in request["MetricDataQueries"]}
    assert queries["ml99"] == {"Metric": {"Namespace": "AWS/SageMaker", "MetricName": "ModelLatency",
                                          "Dimensions": DIMS}, "Period": 300, "Stat": "p99"}
    assert queries["gpu"]["Metric"]["Namespace"] == "/aws/sagemaker/Endpoints"
    assert {q["Stat"] for q in queries.values()} == {"Sum", "Average", "p50", "p90", "p99"}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("endpoint normals, 2026-12-03 11:00 to 12:00 UTC, 5 min periods")
    header, first, second = lines[1].split(), lines[2].split(), lines[3].split()
    assert header[:4] == ["time", "(UTC)", "invocations", "4xx"]
    assert first[:3] == ["12-03", "11:10", "120"] and first[-4] == "35"
    assert second[:3] == ["12-03", "11:40", "300"] and second[-4] == "80" and second[-1] == "0.75"
    assert Image.open(chart).size == (900, 30 + 4 * 220)


def test_report_starts_the_monitor_job_as_a_processing_job_over_the_capture_prefix(aws, capsys):
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-byoc-normals:abc1234"
    role = "arn:aws:iam::123456789012:role/SageMakerExecution"
    assert monitor.main(["report", "--name", NAME, "--image", image, "--role", role, "--poll-seconds", "0",
                         "--capture", "s3://bucket/capture/normals/AllTraffic/2026/12/03/",
                         "--model-data", "s3://bucket/runs/normals-1/output/model.tar.gz",
                         "--output", "s3://bucket/drift/normals/", "--job-name", "normals-drift-1", "--wait"],
                        session=aws.session()) == 0

    def s3_input(name, uri, local):
        return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": local, "S3DataType": "S3Prefix",
                                               "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}

    assert aws.recorder.only("CreateProcessingJob") == {
        "ProcessingJobName": "normals-drift-1",
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                                                  "VolumeSizeInGB": 30}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "AppSpecification": {"ImageUri": image, "ContainerArguments": ["monitor"]},
        "RoleArn": role,
        "ProcessingInputs": [
            s3_input("capture", "s3://bucket/capture/normals/AllTraffic/2026/12/03/",
                     "/opt/ml/processing/input/capture"),
            s3_input("baseline", "s3://bucket/runs/normals-1/output/model.tar.gz",
                     "/opt/ml/processing/input/baseline")],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
            "S3Uri": "s3://bucket/drift/normals/", "LocalPath": "/opt/ml/processing/output",
            "S3UploadMode": "EndOfJob"}}]}}
    assert capsys.readouterr().out.strip() == "s3://bucket/drift/normals/"


def test_report_refuses_a_non_s3_capture_before_any_call(aws):
    with pytest.raises(ShipError, match="--capture 'capture/' is not an S3 URI"):
        monitor.main(["report", "--name", NAME, "--image", "x", "--role", "arn:aws:iam::1:role/R",
                      "--capture", "capture/", "--model-data", "s3://b/m.tar.gz", "--output", "s3://b/o/"],
                     session=aws.session())
    assert aws.recorder.calls == []
