"""Callback for tests: write every task result to the JSON file named by RECORD_RESULTS_FILE.

The default stdout callback prints results for humans; tests need them as data, failures
included (tasks run with ``ignore_errors``), keyed by task name.
"""

from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: write task results to a JSON file (tests only)
description:
  - Collects each task's result and writes them to the file named by RECORD_RESULTS_FILE.
requirements:
  - enabled with ANSIBLE_CALLBACKS_ENABLED=record_results
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def _record(self, result, status: str) -> None:
        self.records.append(
            {
                "task": result.task_name,
                "host": result.host.get_name(),
                "status": status,
                "result": result.result,
            }
        )

    def v2_runner_on_ok(self, result) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._record(result, "failed")

    def v2_runner_on_unreachable(self, result) -> None:
        self._record(result, "unreachable")

    def v2_runner_on_skipped(self, result) -> None:
        self._record(result, "skipped")

    def v2_playbook_on_stats(self, stats) -> None:
        path = os.environ["RECORD_RESULTS_FILE"]
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.records, fh, default=str, indent=1)
