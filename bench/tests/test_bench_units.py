"""Unit tests of the bench's pure parts; the machinery itself is exercised by ``run.py --smoke``."""

from __future__ import annotations

import json
from pathlib import Path

import passes
import profiling
import pytest
import report
import stats


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(200, 0, -1)]
    assert stats.percentile(values, 99) == 198.0
    assert stats.percentile(values, 50) == 100.0
    assert stats.percentile([7.0], 99) == 7.0


def test_median_of_nothing_is_nan_not_zero() -> None:
    assert stats.median([]) != stats.median([])  # NaN: a missing figure never reads as 0


def test_payload_has_the_exact_size_and_is_json() -> None:
    payload = passes.payload_of(report.PAYLOAD_BYTES)
    assert len(payload) == 200
    assert json.loads(payload)["type"] == "notification"


def _rounds(ws_hs: float, ws_kb: float, ws_ms: float, p99: float) -> list[dict]:
    return [
        {
            "node": {
                "handshakes": {"per_cpu_s": 10_000.0, "failed": 0},
                "idle": {"kb_per_conn": 6.0},
                "fanout": {"trigger_to_last_ms": 100.0, "payload_bytes": 200, "server_cpu_ms": 9.0},
            },
            "raw": {
                "fanout": {"trigger_to_last_ms": 60.0, "payload_bytes": 200, "server_cpu_ms": 6.0}
            },
            "wsnotify": {
                "handshakes": {"per_cpu_s": ws_hs, "failed": 0},
                "handshakes_jwe": {"per_cpu_s": ws_hs * 0.9, "failed": 0},
                "verify_us": {"hs256": 4.0, "jwe": 6.0},
                "idle": {"kb_per_conn": ws_kb},
                "fanout": {"trigger_to_last_ms": ws_ms, "payload_bytes": 200, "server_cpu_ms": 8.0},
                "cross_node": {"samples": 10, "p50_ms": 1.0, "p99_ms": p99},
            },
        }
    ]


def test_summary_ratios_and_goals() -> None:
    s = report.summarise(_rounds(ws_hs=21_000.0, ws_kb=3.0, ws_ms=66.0, p99=5.0))
    assert s["ratio_handshakes"] == pytest.approx(2.1)
    assert s["ratio_jwe_handshakes"] == pytest.approx(1.89)
    assert s["ratio_rss"] == pytest.approx(0.5)
    assert s["ratio_fanout"] == pytest.approx(1.1)
    assert s["goals_met"] == {
        "handshakes": True,
        "rss": True,
        "fanout": True,
        "cross_node_p99": True,
    }
    s = report.summarise(_rounds(ws_hs=19_000.0, ws_kb=3.1, ws_ms=67.0, p99=5.1))
    assert not any(s["goals_met"].values())
    text = report.table(s, 10_000)
    assert "1.90x" in text and "NO" in text and "@ 10k" in text and ">= 2.0x" in text
    assert "4.0 / 6.0" in text  # the token check row: HS256 / JWE µs


def test_smoke_check_catches_insane_figures() -> None:
    only = {"node", "raw", "wsnotify"}
    good = {"rounds": _rounds(3_000.0, 16.0, 90.0, 5.0)}
    good["summary"] = report.summarise(good["rounds"])
    assert report.check_smoke(good, only) == []
    bad = {"rounds": _rounds(3_000.0, 16.0, -1.0, 5.0)}
    bad["rounds"][0]["wsnotify"]["handshakes"]["failed"] = 3
    bad["summary"] = report.summarise(bad["rounds"])
    problems = report.check_smoke(bad, only)
    assert any("fan-out" in p for p in problems) and any("failed" in p for p in problems)


def test_profile_summary_counts_self_and_inclusive(tmp_path: Path) -> None:
    raw = tmp_path / "p.txt"
    raw.write_text(
        "main (app/cli.py:1);handle (app/ws.py:5);decode (jwt/api.py:9) 30\n"
        "main (app/cli.py:1);handle (app/ws.py:6) 10\n"
    )
    summary = profiling.summarise(raw)
    assert summary["samples"] == 40
    assert summary["self_pct"][0] == ("decode (jwt/api.py)", 75.0)
    assert ("handle (app/ws.py)", 100.0) in summary["inclusive_pct"]
    assert "75.0%" in profiling.render("t", summary)


def test_memory_summary_is_per_connection_and_short(tmp_path: Path) -> None:
    dump = tmp_path / "m.json"
    site = "/venv/lib/python3.11/site-packages/aiohttp/web_protocol.py"
    dump.write_text(
        json.dumps(
            {
                "by_lineno": [{"site": f"{site}:446", "bytes": 30_000, "blocks": 400}],
                "by_filename": [{"site": f"{site}:0", "bytes": 50_000, "blocks": 700}],
                "total_bytes_lineno": 150_000,
                "total_bytes_filename": 150_000,
            }
        )
    )
    summary = profiling.memory_summary(dump, 10)
    assert summary["traced_bytes_per_conn"] == 15_000
    assert summary["by_line"] == [("aiohttp/web_protocol.py:446", 3000)]
    assert summary["by_file"] == [("aiohttp/web_protocol.py", 5000)]
    assert "3000 B  aiohttp/web_protocol.py:446" in profiling.render_memory(summary)
    assert "error" in profiling.memory_summary(tmp_path / "missing.json", 10)
