"""``wsnotify serve`` with tracemalloc on, for ``run.py --profile``: who holds an idle connection.

Why: py-spy answers "where does the CPU go"; for memory per connection the question is which
allocation sites grow with connections. SIGUSR2 takes the baseline snapshot (before the idle
connections open) and touches $BENCH_TRACEMALLOC_OUT with suffix .mark; SIGUSR1 writes the
growth per source line since then as JSON to $BENCH_TRACEMALLOC_OUT. tracemalloc's own
bookkeeping inflates RSS: figures of such a run are for the "where", not the "how much".
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tracemalloc
from pathlib import Path

TOP = 25
_baseline: list[tracemalloc.Snapshot] = []


def _out() -> Path:
    return Path(os.environ["BENCH_TRACEMALLOC_OUT"])


def _mark(*_: object) -> None:
    _baseline[:] = [tracemalloc.take_snapshot()]
    _out().with_suffix(".mark").write_text("baseline taken\n")  # the bench waits for this


def _dump(*_: object) -> None:
    if not _baseline:
        return
    snapshot = tracemalloc.take_snapshot()
    out: dict[str, object] = {}
    for key in ("filename", "lineno"):
        stats = snapshot.compare_to(_baseline[0], key)
        out[f"by_{key}"] = [
            {"site": str(s.traceback), "bytes": s.size_diff, "blocks": s.count_diff}
            for s in stats[:TOP]
        ]
        out[f"total_bytes_{key}"] = sum(s.size_diff for s in stats)
    tmp = _out().with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.rename(_out())  # atomically: the bench polls for the file


def main() -> int:
    tracemalloc.start(1)
    signal.signal(signal.SIGUSR2, _mark)
    signal.signal(signal.SIGUSR1, _dump)
    from wsnotify.cli import main as wsnotify_main  # after tracemalloc, so imports are traced

    return wsnotify_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
