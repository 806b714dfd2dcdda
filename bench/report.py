"""From the passes' raw figures to medians, ratios, goals and the printed table."""

from __future__ import annotations

from stats import median

PAYLOAD_BYTES = 200  # what the passes aim every broadcast at (passes.PAYLOAD_BYTES)

# The goals of issue 13, each a ratio to a baseline measured in the same run.
GOALS = {
    "handshakes": (">= 2.0x", lambda v: v >= 2.0),
    "rss": ("<= 0.5x", lambda v: v <= 0.5),
    "fanout": ("<= 1.1x", lambda v: v <= 1.1),
    "cross_node_p99": ("p99 <= 5 ms", lambda v: v <= 5.0),
}


def _med(rounds: list[dict], *path: str) -> float | None:
    values = []
    for r in rounds:
        node = r
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            values.append(float(node))
    return median(values) if values else None


def summarise(rounds: list[dict]) -> dict:
    """Medians over rounds, ratios and goals."""
    s: dict = {
        "node_hs_per_cpu_s": _med(rounds, "node", "handshakes", "per_cpu_s"),
        "ws_hs_per_cpu_s": _med(rounds, "wsnotify", "handshakes", "per_cpu_s"),
        "ws_jwe_hs_per_cpu_s": _med(rounds, "wsnotify", "handshakes_jwe", "per_cpu_s"),
        "picows_hs_per_cpu_s": _med(rounds, "picows", "handshakes", "per_cpu_s"),
        "picows_kb_per_conn": _med(rounds, "picows", "idle", "kb_per_conn"),
        "verify_hs256_us": _med(rounds, "wsnotify", "verify_us", "hs256"),
        "verify_jwe_us": _med(rounds, "wsnotify", "verify_us", "jwe"),
        "node_kb_per_conn": _med(rounds, "node", "idle", "kb_per_conn"),
        "ws_kb_per_conn": _med(rounds, "wsnotify", "idle", "kb_per_conn"),
        "raw_fanout_ms": _med(rounds, "raw", "fanout", "trigger_to_last_ms"),
        "raw_send_loop_ms": _med(rounds, "raw", "fanout", "server_send_loop_ms"),
        "node_fanout_ms": _med(rounds, "node", "fanout", "trigger_to_last_ms"),
        "ws_fanout_ms": _med(rounds, "wsnotify", "fanout", "trigger_to_last_ms"),
        "ws_fanout_spread_ms": _med(rounds, "wsnotify", "fanout", "first_to_last_ms"),
        "raw_fanout_cpu_ms": _med(rounds, "raw", "fanout", "server_cpu_ms"),
        "ws_fanout_cpu_ms": _med(rounds, "wsnotify", "fanout", "server_cpu_ms"),
        "ws_cross_p50_ms": _med(rounds, "wsnotify", "cross_node", "p50_ms"),
        "ws_cross_p99_ms": _med(rounds, "wsnotify", "cross_node", "p99_ms"),
        "ws_publish_p50_ms": _med(rounds, "wsnotify", "cross_node", "publish_202_p50_ms"),
        "ws_publish_p99_ms": _med(rounds, "wsnotify", "cross_node", "publish_202_p99_ms"),
    }

    def ratio(a: str, b: str) -> float | None:
        return s[a] / s[b] if s[a] is not None and s[b] else None

    s["ratio_handshakes"] = ratio("ws_hs_per_cpu_s", "node_hs_per_cpu_s")
    s["ratio_jwe_handshakes"] = ratio("ws_jwe_hs_per_cpu_s", "node_hs_per_cpu_s")
    s["ratio_picows_handshakes"] = ratio("picows_hs_per_cpu_s", "node_hs_per_cpu_s")
    s["ratio_picows_rss"] = ratio("picows_kb_per_conn", "node_kb_per_conn")
    s["ratio_rss"] = ratio("ws_kb_per_conn", "node_kb_per_conn")
    s["ratio_fanout"] = ratio("ws_fanout_ms", "raw_fanout_ms")
    s["ratio_node_fanout"] = ratio("node_fanout_ms", "raw_fanout_ms")
    s["ratio_fanout_cpu"] = ratio("ws_fanout_cpu_ms", "raw_fanout_cpu_ms")
    measured = {
        "handshakes": s["ratio_handshakes"],
        "rss": s["ratio_rss"],
        "fanout": s["ratio_fanout"],
        "cross_node_p99": s["ws_cross_p99_ms"],
    }
    s["goals_met"] = {k: (None if v is None else bool(GOALS[k][1](v))) for k, v in measured.items()}
    return s


def _f(v: float | None, fmt: str = "{:.1f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def table(s: dict, conns: int) -> str:
    """The printed table: each wsnotify figure beside its same-run baseline."""

    def met(key: str) -> str:
        v = s["goals_met"][key]
        return "n/a" if v is None else ("yes" if v else "NO")

    k = f"{conns / 1000:g}k" if conns >= 1000 else str(conns)
    rows = [
        ("figure", "wsnotify", "baseline", "ratio", "goal", "met"),
        (
            "1 handshakes / server CPU-s",
            _f(s["ws_hs_per_cpu_s"], "{:.0f} (JWT)"),
            _f(s["node_hs_per_cpu_s"], "{:.0f} node"),
            _f(s["ratio_handshakes"], "{:.2f}x"),
            GOALS["handshakes"][0],
            met("handshakes"),
        ),
        (
            f"2 RSS KB / idle conn @ {k}",
            _f(s["ws_kb_per_conn"]),
            _f(s["node_kb_per_conn"], "{:.1f} node"),
            _f(s["ratio_rss"], "{:.2f}x"),
            GOALS["rss"][0],
            met("rss"),
        ),
        (
            f"3 last of {k} gets broadcast, ms",
            _f(s["ws_fanout_ms"]),
            _f(s["raw_fanout_ms"], "{:.1f} raw"),
            _f(s["ratio_fanout"], "{:.2f}x"),
            GOALS["fanout"][0],
            met("fanout"),
        ),
        (
            f"4 cross-node p50 / p99 ms @ {k}",
            f"{_f(s['ws_cross_p50_ms'], '{:.2f}')} / {_f(s['ws_cross_p99_ms'], '{:.2f}')}",
            "-",
            "-",
            GOALS["cross_node_p99"][0],
            met("cross_node_p99"),
        ),
        (
            "  context: handshakes, NextAuth JWE",
            _f(s["ws_jwe_hs_per_cpu_s"], "{:.0f} (JWE)"),
            _f(s["node_hs_per_cpu_s"], "{:.0f} node"),
            _f(s["ratio_jwe_handshakes"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: token check, us HS256 / JWE",
            f"{_f(s['verify_hs256_us'])} / {_f(s['verify_jwe_us'])}",
            "",
            "",
            "",
            "",
        ),
        (
            "  context: picows + same JWT, handshakes",
            "",
            _f(s["picows_hs_per_cpu_s"], "{:.0f} picows"),
            _f(s["ratio_picows_handshakes"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: picows RSS KB / idle conn",
            "",
            _f(s["picows_kb_per_conn"], "{:.1f} picows"),
            _f(s["ratio_picows_rss"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: node ws broadcast, ms",
            _f(s["node_fanout_ms"]),
            _f(s["raw_fanout_ms"], "{:.1f} raw"),
            _f(s["ratio_node_fanout"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: raw server send loop, ms",
            "",
            _f(s["raw_send_loop_ms"]),
            "",
            "",
            "",
        ),
        (
            "  context: server CPU per broadcast, ms",
            _f(s["ws_fanout_cpu_ms"]),
            _f(s["raw_fanout_cpu_ms"], "{:.1f} raw"),
            _f(s["ratio_fanout_cpu"], "{:.2f}x"),
            "",
            "",
        ),
        (
            "  context: wsnotify first->last, ms",
            _f(s["ws_fanout_spread_ms"]),
            "",
            "",
            "",
            "",
        ),
        (
            "  context: publish until 202 p50/p99 ms",
            f"{_f(s['ws_publish_p50_ms'], '{:.2f}')} / {_f(s['ws_publish_p99_ms'], '{:.2f}')}",
            "",
            "",
            "",
            "",
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def check_smoke(results: dict, only: set[str]) -> list[str]:
    """Sanity bounds for smoke mode: the machinery worked and the figures are plausible."""
    problems = []
    s = results["summary"]

    def want(cond: bool, what: str) -> None:
        if not cond:
            problems.append(what)

    for r in results["rounds"]:
        for name in ("node", "picows", "wsnotify"):
            if name in only:
                hs = r[name]["handshakes"]
                want(
                    100 < hs["per_cpu_s"] < 200_000,
                    f"{name} handshakes/CPU-s {hs['per_cpu_s']}",
                )
                want(hs["failed"] == 0, f"{name}: {hs['failed']} handshakes failed")
                idle = r[name]["idle"]
                want(
                    -10 < idle["kb_per_conn"] < 1000,
                    f"{name} KB/conn {idle['kb_per_conn']}",
                )
        for name in only - {"picows"}:  # picows is measured for figures 1 and 2 only
            fo = r[name]["fanout"]
            want(
                0 < fo["trigger_to_last_ms"] < 10_000,
                f"{name} fan-out {fo['trigger_to_last_ms']}",
            )
            want(fo["server_cpu_ms"] > 0, f"{name}: no server CPU measured for a broadcast")
            want(
                abs(fo["payload_bytes"] - PAYLOAD_BYTES) <= 8,
                f"{name} payload {fo['payload_bytes']} bytes, expected ~{PAYLOAD_BYTES}",
            )
        if "wsnotify" in only:
            jwe = r["wsnotify"]["handshakes_jwe"]
            want(jwe["failed"] == 0 and jwe["per_cpu_s"] > 100, f"wsnotify JWE handshakes {jwe}")
            cn = r["wsnotify"]["cross_node"]
            want(cn["samples"] > 0 and 0 < cn["p99_ms"] < 5_000, f"cross-node {cn}")
    if {"node", "wsnotify"} <= only:
        want(s["ratio_handshakes"] is not None, "no handshake ratio")
    return problems
