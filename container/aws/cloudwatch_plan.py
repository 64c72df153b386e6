"""What ``python -m container.aws.monitor setup`` creates for an endpoint, as exact CloudWatch (Logs) requests.

Every name derives from the endpoint name ``N``:

  log group      /aws/sagemaker/Endpoints/N              (SageMaker's; we only add metric filters to it)
  filters        N-byoc-requests, -latency, -errors-4xx, -errors-5xx, -image-pixels, -input-drift, -prediction-drift
  namespace      sagemaker-byoc/N                         (the custom metrics those filters publish)
  alarms         N-byoc-alarm-p99-latency, N-byoc-alarm-error-rate, N-byoc-alarm-input-drift
  dashboard      N-byoc

The filters read the JSON access-log lines the server writes per request (README "Serving", Logs): fields
``path``, ``status``, ``latency_ms``, ``image_pixels``, ``input_drift``, ``prediction_drift``.
Alarms use SageMaker's own ``AWS/SageMaker`` metrics for latency and errors (published even when logging
lags) and the custom ``InputDrift`` metric for drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VARIANT = "AllTraffic"
SAGEMAKER_NS = "AWS/SageMaker"
INSTANCE_NS = "/aws/sagemaker/Endpoints"
#: ALERT_PER_IMAGE in model/drift.py (repeated here: this module must not import numpy). A test keeps them equal.
DEFAULT_DRIFT_THRESHOLD = 1.1
_INVOCATIONS = '$.path = "/invocations"'

#: (filter suffix, metric name, pattern, value, unit)
FILTERS: tuple[tuple[str, str, str, str, str], ...] = (
    ("requests", "Requests", f"{{ {_INVOCATIONS} }}", "1", "Count"),
    ("latency", "LatencyMs", f"{{ {_INVOCATIONS} && $.latency_ms >= 0 }}", "$.latency_ms", "Milliseconds"),
    ("errors-4xx", "Errors4xx", f"{{ {_INVOCATIONS} && $.status >= 400 && $.status < 500 }}", "1", "Count"),
    ("errors-5xx", "Errors5xx", f"{{ {_INVOCATIONS} && $.status >= 500 }}", "1", "Count"),
    ("image-pixels", "ImagePixels", f"{{ {_INVOCATIONS} && $.image_pixels > 0 }}", "$.image_pixels", "Count"),
    ("input-drift", "InputDrift", f"{{ {_INVOCATIONS} && $.input_drift >= 0 }}", "$.input_drift", "None"),
    ("prediction-drift", "PredictionDrift", f"{{ {_INVOCATIONS} && $.prediction_drift >= 0 }}",
     "$.prediction_drift", "None"),
)


@dataclass(frozen=True)
class MonitorPlan:
    name: str
    latency_p99_ms: float = 1000.0
    error_rate: float = 0.01
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    period_s: int = 300
    evaluation_periods: int = 3
    alarm_topic: str | None = None

    @property
    def log_group(self) -> str:
        return f"{INSTANCE_NS}/{self.name}"

    @property
    def namespace(self) -> str:
        return f"sagemaker-byoc/{self.name}"

    @property
    def prefix(self) -> str:
        return f"{self.name}-byoc"

    @property
    def dashboard_name(self) -> str:
        return self.prefix

    def _dims(self) -> list[dict[str, str]]:
        return [{"Name": "EndpointName", "Value": self.name}, {"Name": "VariantName", "Value": VARIANT}]

    # -- metric filters --------------------------------------------------------------------------------
    def metric_filter_requests(self) -> list[dict[str, Any]]:
        return [{"logGroupName": self.log_group, "filterName": f"{self.prefix}-{suffix}", "filterPattern": pattern,
                 "metricTransformations": [{"metricName": metric, "metricNamespace": self.namespace,
                                            "metricValue": value, "unit": unit}]}
                for suffix, metric, pattern, value, unit in FILTERS]

    # -- alarms ----------------------------------------------------------------------------------------
    def _alarm(self, suffix: str, description: str, threshold: float, **metric: Any) -> dict[str, Any]:
        request = {"AlarmName": f"{self.prefix}-{suffix}", "AlarmDescription": description,
                   "ComparisonOperator": "GreaterThanThreshold", "Threshold": threshold,
                   "EvaluationPeriods": self.evaluation_periods, "DatapointsToAlarm": self.evaluation_periods,
                   "TreatMissingData": "notBreaching", **metric}
        if self.alarm_topic:
            request.update(AlarmActions=[self.alarm_topic], OKActions=[self.alarm_topic])
        return request

    def alarm_requests(self) -> list[dict[str, Any]]:
        minutes = self.period_s * self.evaluation_periods // 60
        latency = self._alarm(
            "alarm-p99-latency", f"{self.name}: p99 ModelLatency over {self.latency_p99_ms:g} ms for {minutes} min",
            self.latency_p99_ms * 1000,  # ModelLatency is in microseconds
            Namespace=SAGEMAKER_NS, MetricName="ModelLatency", Dimensions=self._dims(), ExtendedStatistic="p99",
            Period=self.period_s, Unit="Microseconds")
        errors = self._alarm(
            "alarm-error-rate",
            f"{self.name}: over {self.error_rate:.1%} of invocations answered 5xx for {minutes} min",
            self.error_rate,
            Metrics=[
                {"Id": "errors", "ReturnData": False, "MetricStat": {"Metric": {
                    "Namespace": SAGEMAKER_NS, "MetricName": "Invocation5XXErrors", "Dimensions": self._dims()},
                    "Period": self.period_s, "Stat": "Sum"}},
                {"Id": "invocations", "ReturnData": False, "MetricStat": {"Metric": {
                    "Namespace": SAGEMAKER_NS, "MetricName": "Invocations", "Dimensions": self._dims()},
                    "Period": self.period_s, "Stat": "Sum"}},
                {"Id": "rate", "Expression": "IF(invocations > 0, errors / invocations, 0)",
                 "Label": "5xx error rate", "ReturnData": True}])
        drift = self._alarm(
            "alarm-input-drift", f"{self.name}: mean per-image input drift score over {self.drift_threshold:g} for "
            f"{minutes} min (images unlike the training data; see README Monitoring)", self.drift_threshold,
            Namespace=self.namespace, MetricName="InputDrift", Statistic="Average", Period=self.period_s)
        return [latency, errors, drift]

    @property
    def alarm_names(self) -> list[str]:
        return [a["AlarmName"] for a in self.alarm_requests()]

    @property
    def filter_names(self) -> list[str]:
        return [f["filterName"] for f in self.metric_filter_requests()]

    # -- dashboard -------------------------------------------------------------------------------------
    def dashboard_request(self, region: str, alarm_arns: list[str]) -> dict[str, Any]:
        ep = ["EndpointName", self.name, "VariantName", VARIANT]

        def widget(x: int, y: int, title: str, metrics: list[list[Any]], **props: Any) -> dict[str, Any]:
            return {"type": "metric", "x": x, "y": y, "width": 12, "height": 6,
                    "properties": {"title": title, "region": region, "view": "timeSeries", "stacked": False,
                                   "period": self.period_s, "metrics": metrics, **props}}

        latency = [[SAGEMAKER_NS, "ModelLatency", *ep, {"stat": p, "label": f"model {p} (us)"}]
                   for p in ("p50", "p90", "p99")]
        latency.append([SAGEMAKER_NS, "OverheadLatency", *ep, {"stat": "p99", "label": "overhead p99 (us)"}])
        threshold = {"horizontal": [{"label": "alarm", "value": self.drift_threshold}]}
        widgets = [
            widget(0, 0, "Invocations and errors (sum per period)",
                   [[SAGEMAKER_NS, m, *ep, {"stat": "Sum"}]
                    for m in ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")]),
            widget(12, 0, "Latency (microseconds)", latency,
                   annotations={"horizontal": [{"label": "p99 alarm", "value": self.latency_p99_ms * 1000}]}),
            widget(0, 6, "Instance utilisation (%)",
                   [[INSTANCE_NS, m, *ep, {"stat": "Average"}]
                    for m in ("CPUUtilization", "MemoryUtilization", "GPUUtilization")]),
            widget(12, 6, "Input / prediction drift (max PSI per image; mean and p90)",
                   [[self.namespace, "InputDrift", {"stat": "Average"}],
                    [self.namespace, "InputDrift", {"stat": "p90"}],
                    [self.namespace, "PredictionDrift", {"stat": "Average"}]], annotations=threshold),
            widget(0, 12, "Container latency from the access log (ms)",
                   [[self.namespace, "LatencyMs", {"stat": p}] for p in ("p50", "p99")]),
            widget(12, 12, "Image size (pixels of the largest image per request)",
                   [[self.namespace, "ImagePixels", {"stat": s}] for s in ("Average", "Maximum")]),
            {"type": "alarm", "x": 0, "y": 18, "width": 24, "height": 3,
             "properties": {"title": "Alarms", "alarms": list(alarm_arns)}},
        ]
        return {"DashboardName": self.dashboard_name, "DashboardBody": json.dumps({"widgets": widgets})}
