#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/farm.json, the farm's Grafana dashboard.

The panels are listed here, compactly, and the JSON is generated from them:
`python3 deploy/grafana/dashboard.py` rewrites the file, `--check` fails if
the committed JSON differs from what this script makes (deploy/check.sh runs
that, then parses every expression with promtool and checks every metric
name against deploy/metrics.txt). Standard library only.
"""

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards" / "farm.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
LANE = 'lane=~"$lane"'


def quantiles(metric, by, qs=(0.5, 0.95, 0.99), matcher=""):
    sel = f"{metric}_bucket{{{matcher}}}" if matcher else f"{metric}_bucket"
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({sel}[{RATE}])))", f"p{int(q * 100)} {{{{{by}}}}}")
        for q in qs
    ]


# (row, [(title, kind, unit, [(expr, legend)], description)])
ROWS = [
    (
        "Lanes: backlog and latency",
        [
            ("Ready jobs per lane", "timeseries", "short",
             [(f"max by (lane) (farm_queue_messages{{{LANE}}})", "{{lane}}")],
             "Messages ready in each lane's queue (not yet delivered to a worker)."),
            ("Oldest queued job per lane", "timeseries", "s",
             [(f"max by (lane) (farm_queue_oldest_job_age_seconds{{{LANE}}})", "{{lane}}")],
             "How long the oldest job still queued has waited (alerts: 3 min fast, 30 min slow)."),
            ("Consumers and in-flight jobs", "timeseries", "short",
             [(f"max by (lane) (farm_queue_consumers{{{LANE}}})", "consumers {{lane}}"),
              (f"sum by (lane) (farm_jobs_in_flight{{{LANE}}})", "in flight {{lane}}")],
             "Workers consuming each lane, and the jobs they are running."),
            ("Time in queue (p50 / p95 / p99)", "timeseries", "s",
             quantiles("farm_job_queued_seconds", "lane", matcher=LANE),
             "From acceptance to a worker starting the job."),
            ("Compute time (p50 / p95 / p99)", "timeseries", "s",
             quantiles("farm_job_compute_seconds", "lane", matcher=LANE),
             "From a worker starting the job to its result."),
        ],
    ),
    (
        "Workers: throughput and outcomes",
        [
            ("Triangles priced per second", "timeseries", "short",
             [(f"sum by (lane) (rate(farm_triangles_priced_total{{{LANE}}}[{RATE}]))", "{{lane}}")],
             "Worker throughput: mesh triangles analysed and priced per second."),
            ("Jobs per minute by outcome", "timeseries", "short",
             [(f"60 * sum by (lane, outcome) (rate(farm_jobs_total{{{LANE}}}[{RATE}]))", "{{lane}} {{outcome}}")],
             "Finished jobs (succeeded, failed, deadline_exceeded, cancelled) and hand-backs (released, rejected, duplicate)."),
            ("Jobs submitted per minute", "timeseries", "short",
             [(f"60 * sum by (lane, cached) (rate(farm_jobs_submitted_total{{{LANE}}}[{RATE}]))", "{{lane}} cached={{cached}}")],
             "Accepted pricing jobs; cached=true were answered from the quote cache without queueing."),
            ("Redeliveries and retries per minute", "timeseries", "short",
             [(f"60 * sum by (lane) (rate(farm_job_redeliveries_total{{{LANE}}}[{RATE}]))", "redelivered {{lane}}"),
              (f"60 * sum by (lane, reason) (rate(farm_job_retries_total{{{LANE}}}[{RATE}]))", "retry {{lane}} {{reason}}")],
             "Jobs delivered again after a worker died, and transient retries."),
        ],
    ),
    (
        "API and caches",
        [
            ("API latency per route (p50 / p99)", "timeseries", "s",
             quantiles("farm_http_request_duration_seconds", "route", qs=(0.5, 0.99),
                       matcher='route!~"/metrics|/healthz|/readyz"'),
             "Alert: p99 above 1 s for 10 minutes (uploads excepted)."),
            ("Requests per second by status", "timeseries", "reqps",
             [(f"sum by (status) (rate(farm_http_requests_total[{RATE}]))", "{{status}}")],
             "Every API response, by HTTP status."),
            ("Quote cache hit ratio", "timeseries", "percentunit",
             [(f"sum(rate(farm_quote_cache_hits_total[{RATE}])) / "
               f"(sum(rate(farm_quote_cache_hits_total[{RATE}])) + sum(rate(farm_quote_cache_misses_total[{RATE}])))",
               "quote cache")],
             "Pricing jobs answered from an earlier identical quote."),
            ("Operator list cache", "timeseries", "percentunit",
             [(f'sum(rate(farm_operator_cache_requests_total{{result="hit"}}[{RATE}])) / '
               f"sum(rate(farm_operator_cache_requests_total[{RATE}]))", "hit ratio"),
              (f"sum by (result) (rate(farm_operator_cache_requests_total[{RATE}])) / ignoring (result) group_left "
               f"sum(rate(farm_operator_cache_requests_total[{RATE}]))", "{{result}}")],
             "The API's Redis cache of the operator list: hit, miss and bypass shares."),
            ("Orders received per minute", "timeseries", "short",
             [(f"60 * sum by (source) (rate(farm_orders_received_total[{RATE}]))", "{{source}}")],
             "Orders from each source (customers, CRM, sellers)."),
        ],
    ),
    (
        "Failures and dependencies",
        [
            ("Dead letters", "timeseries", "short",
             [(f"sum by (lane, reason) (increase(farm_dead_letters_total[{RATE}]))", "{{lane}} {{reason}}"),
              ("max(farm_dead_letter_queue_messages)", "in the dead-letter queue"),
              (f"sum by (source) (increase(farm_order_intake_dead_letters_total[{RATE}]))", "order intake {{source}}")],
             "Jobs the broker gave up on (see deploy/RUNBOOK.md, replay dead letters)."),
            ("Outbox relay", "timeseries", "short",
             [("max(farm_outbox_backlog)", "unsent rows"),
              ("max(farm_outbox_oldest_unsent_age_seconds)", "oldest unsent (s)")],
             "Accepted jobs not yet published to the broker, and the relay's lag."),
            ("Stale running jobs", "timeseries", "short",
             [("max(farm_jobs_stale)", "stale")],
             "Running jobs whose worker stopped sending heartbeats."),
            ("Database and broker up", "stat", "short",
             [("min(farm_database_up)", "database"),
              ("min(farm_broker_up)", "broker (API)"),
              ("min(farm_broker_connected)", "broker (all processes)"),
              ('sum by (job) (up{job=~"farm-.*"})', "targets up {{job}}")],
             "1 is up; 0 means at least one process cannot reach it."),
            ("Broker reconnects and consumer timeouts", "timeseries", "short",
             [(f"sum(increase(farm_broker_reconnects_total[{RATE}]))", "reconnects"),
              (f"sum(increase(farm_broker_consumer_timeouts_total[{RATE}]))", "consumer timeouts")],
             "A consumer timeout means the broker's consumer_timeout is shorter than a job (see deploy/README.md)."),
        ],
    ),
]


def panel(pid, title, kind, unit, targets, description, x, y):
    p = {
        "id": pid,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 8, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "stat":
        p["fieldConfig"]["defaults"]["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": "red", "value": None}, {"color": "green", "value": 1}],
        }
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    return p


def dashboard():
    panels, pid, y = [], 1, 0
    for row_title, row_panels in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []})
        pid, y = pid + 1, y + 1
        for i, (title, kind, unit, targets, description) in enumerate(row_panels):
            x = (i % 3) * 8
            if i and i % 3 == 0:
                y += 8
            panels.append(panel(pid, title, kind, unit, targets, description, x, y))
            pid += 1
        y += 8
    return {
        "uid": "pricing-farm",
        "title": "Pricing farm",
        "description": "Lanes, workers, API, caches and dependencies of the pricing farm (generated by deploy/grafana/dashboard.py).",
        "tags": ["pricing-farm"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
                 "current": {"text": "Prometheus", "value": "prometheus"}, "hide": 0},
                {"name": "lane", "label": "Lane", "type": "custom", "query": "fast,slow", "multi": True,
                 "includeAll": True, "allValue": "fast|slow", "current": {"text": "All", "value": "$__all"},
                 "options": [], "hide": 0},
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render():
    return json.dumps(dashboard(), indent=2, sort_keys=False) + "\n"


def main(argv):
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 deploy/grafana/dashboard.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
