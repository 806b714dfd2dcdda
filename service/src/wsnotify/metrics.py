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
from prometheus_client.core import CounterMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip


class Tally:
    """A counter for the handshake path: a plain integer, no lock (prometheus_client's
    Counter takes one per ``inc``). Only the event-loop thread increments it; a scrape reads it."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class _Tallies:
    """Exposes labelled tallies as one counter family."""

    def __init__(self, name: str, documentation: str, label: str, tallies: dict[str, Tally]):
        self._family = (name, documentation, label)
        self._tallies = tallies

    def collect(self) -> list[CounterMetricFamily]:
        name, documentation, label = self._family
        family = CounterMetricFamily(name, documentation, labels=[label])
        for value, tally in self._tallies.items():
            family.add_metric([value], tally.value)
        return [family]


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
        # One attribute per outcome: the handshake path does no label lookup and takes no lock.
        self.handshake_ok = Tally()
        self.handshake_unauthorized = Tally()
        self.handshake_origin_rejected = Tally()
        self.handshake_over_limit = Tally()
        self.handshake_over_capacity = Tally()
        r.register(
            _Tallies(
                "wsnotify_handshakes",
                "WebSocket handshakes by outcome "
                "(ok, unauthorized, origin_rejected, over_limit, over_capacity)",
                "outcome",
                {
                    "ok": self.handshake_ok,
                    "unauthorized": self.handshake_unauthorized,
                    "origin_rejected": self.handshake_origin_rejected,
                    "over_limit": self.handshake_over_limit,
                    "over_capacity": self.handshake_over_capacity,
                },
            )
        )
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

        self.recoveries = Counter(
            "wsnotify_recoveries_total",
            "Connections resumed with after_id, by outcome (complete; partial: past the replay "
            "limit, the client pages the API; failed: PostgreSQL did not answer, closed 1013)",
            ["outcome"],
            registry=r,
        )
        self.recovered = Counter(
            "wsnotify_recovered_total",
            "Messages sent at the end of recoveries, by source (replayed from PostgreSQL; "
            "held: live during the replay; duplicate: held but already replayed, not sent)",
            ["source"],
            registry=r,
        )

    def render(self) -> tuple[bytes, str]:
        """Exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
