"""Watch every process's command line while something runs: a secret passed as an argument is
readable by every local user in /proc/PID/cmdline (``ps``), whatever ``no_log`` hides."""

from __future__ import annotations

import os
import threading


class CmdlineWatch:
    """Context manager: samples /proc/*/cmdline in a thread until the block ends.

    ``leaks`` lists (pid, which secret) for each process whose command line held a secret;
    ``seen`` holds every command line sampled (secrets redacted), so a test can prove the
    sampling caught the processes it cares about.
    """

    def __init__(self, secrets: dict[str, str], interval: float = 0.002) -> None:
        self.secrets = {name: value.encode() for name, value in secrets.items() if value}
        self.interval = interval
        self.leaks: list[tuple[int, str]] = []
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
        own = os.getpid()
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == own:
                    continue
                try:
                    with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                        cmdline = fh.read()
                except OSError:  # the process ended meanwhile
                    continue
                for name, value in self.secrets.items():
                    if value in cmdline:
                        self.leaks.append((int(entry.name), name))
                        cmdline = cmdline.replace(value, f"<{name}>".encode())
                self.seen.add(cmdline.replace(b"\0", b" ").decode(errors="replace"))
            self.sweeps += 1
            self._stop.wait(self.interval)
