"""``GET /metrics`` for Prometheus: off unless ``METRICS_TOKEN`` is set (``meiqia.metrics``)."""

from __future__ import annotations

from flask import Flask

from meiqia import metrics


def init_app(app: Flask) -> None:
    metrics.init_app(app)
