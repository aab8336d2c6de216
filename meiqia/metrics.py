"""Prometheus metrics (prometheus-client): what the service does, for dashboards and alerts.

Off by default: ``/metrics`` answers 404 until ``METRICS_TOKEN`` is set, and then
only to ``Authorization: Bearer <METRICS_TOKEN>`` (scrapers send it with
``authorization: {credentials: …}``); the figures name plugins and queue sizes,
which are nobody else's business.

Counters and histograms are updated where things happen (messages stored, acks
sent, sockets opened, plugin calls); the queue and the jobs are counted in the
database when scraped, so every process reports the same. Several gunicorn
workers: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory before the server
starts (prometheus-client's multiprocess mode); each worker writes its figures
there and ``/metrics`` sums them (``deploy/gunicorn.conf.py`` marks a dead
worker's files). Without it, each scrape sees the one worker that answered.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily

MESSAGES = Counter("meiqia_messages_total", "Messages stored, by sender kind (visitor: in; "
                   "agent and bot: out; system) and visibility",
                   ["sender_kind", "visibility"])
ACK_SECONDS = Histogram("meiqia_ack_seconds", "Socket message frame received -> ack sent",
                        ["socket"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                             2.5, 5, 10))
OPEN_SOCKETS = Gauge("meiqia_open_sockets", "Websockets open now", ["socket"],
                     multiprocess_mode="livesum")
PLUGIN_CALLS = Counter("meiqia_plugin_calls_total", "Plugin hook calls, by outcome "
                       "(ok, raised, timeout, busy, suspended)", ["plugin", "hook", "outcome"])
PLUGIN_SECONDS = Histogram("meiqia_plugin_call_seconds", "Plugin hook call latency",
                           ["plugin", "hook"],
                           buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 30))


class _DatabaseCollector:
    """Queue length and job counts, read from the database at scrape time."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def collect(self) -> Any:
        import peewee

        from meiqia.db import database
        from meiqia.models import Conversation
        from meiqia.models import JobRecord

        queued = GaugeMetricFamily("meiqia_conversations_queued",
                                   "Conversations waiting for an agent")
        jobs = GaugeMetricFamily("meiqia_jobs", "Recorded jobs by status (queued: the "
                                 "queue's depth; failed: failures)", labels=["status"])
        try:
            with self.app.app_context(), database.connection_context():
                queued.add_metric([], Conversation.select().where(
                    Conversation.status == "queued").count())
                for status, count in (JobRecord.select(JobRecord.status, peewee.fn.COUNT(1))
                                      .group_by(JobRecord.status).tuples()):
                    jobs.add_metric([status], count)
        except peewee.PeeweeException:
            return  # the database is down: /healthz says so; no figures
        yield queued
        yield jobs


def registry(app: Any) -> CollectorRegistry:
    """What one scrape reports: this process's (or, in multiprocess mode, every
    worker's) metrics, and the database's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
    else:
        from prometheus_client import REGISTRY

        reg = CollectorRegistry()
        for collector in list(REGISTRY._collector_to_names):  # noqa: SLF001 - the default set
            reg.register(collector)
    reg.register(_DatabaseCollector(app))
    return reg


def init_app(app: Any) -> None:
    from flask import Response
    from flask import abort
    from flask import request

    @app.get("/metrics")
    def metrics() -> Any:
        token = app.config["METRICS_TOKEN"]
        if not token:
            abort(404)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("metrics need Authorization: Bearer <METRICS_TOKEN>\n", 401,
                            {"WWW-Authenticate": "Bearer"}, mimetype="text/plain")
        return Response(generate_latest(registry(app)), mimetype=CONTENT_TYPE_LATEST)
