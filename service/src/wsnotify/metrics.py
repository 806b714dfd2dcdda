"""Prometheus metrics, in one registry owned by the process.

Counters on the fan-out path are incremented once per fan-out (by the number of deliveries),
not once per client, so observability costs nothing per connection.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class Metrics:
    """All metrics of one process; tests build their own instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.connections = Gauge(
            "wsnotify_connections", "Authenticated WebSocket connections open now", registry=r
        )
        self.handshakes = Counter(
            "wsnotify_handshakes_total",
            "WebSocket handshakes by outcome (ok, unauthorized, origin_rejected, over_limit)",
            ["outcome"],
            registry=r,
        )
        # Bound children: the handshake path does no label lookup.
        self.handshake_ok = self.handshakes.labels("ok")
        self.handshake_unauthorized = self.handshakes.labels("unauthorized")
        self.handshake_origin_rejected = self.handshakes.labels("origin_rejected")
        self.handshake_over_limit = self.handshakes.labels("over_limit")
        self.deliveries = Counter(
            "wsnotify_deliveries_total", "Messages written to client connections", registry=r
        )
        self.slow_drops = Counter(
            "wsnotify_slow_client_drops_total",
            "Connections closed with 1013 because their send buffer exceeded the limit",
            registry=r,
        )
        self.latency = Histogram(
            "wsnotify_publish_to_send_seconds",
            "From publish to the last local write of the fan-out (includes clock skew "
            "between nodes)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fanout = Histogram(
            "wsnotify_fanout_seconds",
            "Time to write one message to every local target connection, by target "
            "(user, broadcast)",
            ["target"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.fanout_user = self.fanout.labels("user")
        self.fanout_broadcast = self.fanout.labels("broadcast")
        self.published = Counter(
            "wsnotify_published_total",
            "Notifications persisted by this node, by Redis publish result (ok, failed)",
            ["result"],
            registry=r,
        )
        self.redis_subscribed = Gauge(
            "wsnotify_redis_subscribed", "1 while the Redis subscription is active", registry=r
        )
        self.redis_reconnects = Counter(
            "wsnotify_redis_reconnects_total",
            "Redis subscriber reconnections (each one sends resync to clients)",
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """Exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
