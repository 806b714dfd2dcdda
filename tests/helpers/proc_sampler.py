"""Record the command line of every process that runs while it does (stdlib only).

Started by a test on the controller and, the same source through ``python3 -c``, inside a
container. It prints ``ready`` after its first pass over /proc, then scans /proc again and
again (a pass takes a few milliseconds, shorter than any process Ansible starts) until its
stdin is closed, then prints one JSON object: every distinct command line seen (arguments
joined by spaces) and the number of passes. It never needs to know what it looks for.

In a test's own process, ``CmdlineWatch(secrets)`` runs the same scan in a thread while a block
runs and names each secret it found on a command line.
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


class CmdlineWatch:
    """Context manager: scans /proc in a thread until the block ends.

    ``leaks`` names each secret found on some command line; ``seen`` holds every command line
    sampled (secrets redacted), so a test can prove the sampling caught what it cares about.
    """

    def __init__(self, secrets: dict[str, str], interval: float = 0.002) -> None:
        self.secrets = {name: value for name, value in secrets.items() if value}
        self.interval = interval
        self.leaks: list[str] = []
        self.seen: set[str] = set()
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CmdlineWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            sampled: set[str] = set()
            scan(sampled)
            for cmdline in sampled:
                for name, value in self.secrets.items():
                    if value in cmdline:
                        self.leaks.append(name)
                        cmdline = cmdline.replace(value, f"<{name}>")
                self.seen.add(cmdline)
            self.sweeps += 1
            self._stop.wait(self.interval)


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
