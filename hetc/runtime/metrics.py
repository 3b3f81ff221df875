"""Per-stage Prometheus metrics, served on /metrics: the measurements re-planning reads.

- hetc_request_seconds (histogram, by outcome) and hetc_stage_seconds (histogram, by stage): buckets at the
  plan's SLO targets (end-to-end, TTFT, TBT) and the stages' predicted latencies, so "share of calls within
  the target" is one bucket ratio;
- hetc_stage_queue (gauge): calls of a stage started by the router and not yet finished (waiting + running);
- hetc_stage_batch_size (histogram): the batch a replica formed (stages the plan batches);
- hetc_stage_visits_per_request (histogram): how often a request ran the stage (loops and branches);
- hetc_stage_errors_total and hetc_requests_total (counters, by error type / outcome).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

SPREAD_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)  # between the SLO-derived buckets
VISIT_BUCKETS = (0, 1, 2, 3, 4, 5, 8, 16, 32)


def slo_buckets(plan: dict[str, Any]) -> list[float]:
    """Latency buckets in seconds: the SLO targets, every stage's predicted latency, and a coarse spread."""
    slo = plan["slo"]
    targets = [slo[k] for k in ("latency_ms", "ttft_ms", "tbt_ms") if slo.get(k)]
    predicted = [s["predicted"]["latency_ms"] for s in plan["stages"] if s["predicted"]["latency_ms"] > 0]
    return sorted({round(ms / 1000, 6) for ms in targets + predicted} | set(SPREAD_S))


class RuntimeMetrics:
    def __init__(self, plan: dict[str, Any]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        buckets = slo_buckets(plan)
        self.request_seconds = Histogram("hetc_request_seconds", "End-to-end request latency",
                                         ["outcome"], buckets=buckets, registry=self.registry)
        self.requests = Counter("hetc_requests", "Requests by outcome", ["outcome"], registry=self.registry)
        self.stage_seconds = Histogram("hetc_stage_seconds", "Stage call latency seen by the router",
                                       ["stage"], buckets=buckets, registry=self.registry)
        self.queue = Gauge("hetc_stage_queue", "Stage calls waiting or running", ["stage"], registry=self.registry)
        self.batch = Histogram("hetc_stage_batch_size", "Batch a replica formed", ["stage"],
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.visits = Histogram("hetc_stage_visits_per_request", "Times a request ran the stage", ["stage"],
                                buckets=VISIT_BUCKETS, registry=self.registry)
        self.errors = Counter("hetc_stage_errors", "Stage failures by type", ["stage", "type"],
                              registry=self.registry)
        self.stages = [s["id"] for s in plan["stages"] if s["kind"] not in ("input", "output")]
        for stage in self.stages:  # every series exists from the start (a scrape sees zeros, not gaps)
            self.queue.labels(stage)

    def stage_started(self, stage: str) -> None:
        self.queue.labels(stage).inc()

    def stage_finished(self, stage: str, seconds: float, result: dict[str, Any]) -> None:
        self.queue.labels(stage).dec()
        self.stage_seconds.labels(stage).observe(seconds)
        if "error" in result:
            self.errors.labels(stage, result["error"].get("type", "stage_failed")).inc()
        if "batch_size" in result:
            self.batch.labels(stage).observe(result["batch_size"])

    def request_done(self, outcome: str, seconds: float, visits: Counter) -> None:
        self.requests.labels(outcome).inc()
        self.request_seconds.labels(outcome).observe(seconds)
        for stage in self.stages:
            self.visits.labels(stage).observe(visits.get(stage, 0))

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
