"""Prometheus metrics of one platform process, served at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        # A registry per app, so that several apps in one process (tests) do not collide.
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "agent_platform_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "agent_platform_http_request_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            registry=self.registry,
        )
        self.runs_started = Counter(
            "agent_platform_runs_started", "Runs handed to the executor", registry=self.registry
        )
        self.runs_finished = Counter(
            "agent_platform_runs_finished",
            "Runs that reached a terminal status",
            ["status"],
            registry=self.registry,
        )
        self.events_ingested = Counter(
            "agent_platform_events_ingested",
            "Run events newly stored",
            registry=self.registry,
        )
        self.subscribers = Gauge(
            "agent_platform_stream_subscribers",
            "Open SSE and WebSocket event streams",
            registry=self.registry,
        )
