"""Record the command line of every process that runs while it does (stdlib only).

Started by a test on the controller and, the same source through ``python3 -c``, inside a
container. It prints ``ready`` after its first pass over /proc, then scans /proc again and
again (a pass takes a few milliseconds, shorter than any process Ansible starts) until its
stdin is closed, then prints one JSON object: every distinct command line seen (arguments
joined by spaces) and the number of passes. It never needs to know what it looks for.
"""

from __future__ import annotations

import json
import os
import sys
import threading


def scan(seen: set[str]) -> None:
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                raw = f.read()
        except OSError:  # gone between listdir and open
            continue
        if raw:
            seen.add(raw.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", "replace"))


def main() -> None:
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    seen: set[str] = set()
    scan(seen)
    print("ready", flush=True)
    passes = 1
    # A pause between passes leaves the CPU to what is observed; the shortest process Ansible
    # starts (a Python interpreter) lives tens of milliseconds, several passes.
    while not stop.wait(0.002):
        scan(seen)
        passes += 1
    print(json.dumps({"passes": passes, "cmdlines": sorted(seen)}), flush=True)


if __name__ == "__main__":
    main()
