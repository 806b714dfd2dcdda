"""A changed release of the service for deploy tests: its source copied with one comment line
added, so the wheelhouse (and the release id) differ from the repository's."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SERVICE = Path(__file__).resolve().parents[2] / "service"


@contextmanager
def release_variant(tag: str) -> Iterator[Path]:
    """A copy of service/ (no tests) with a comment naming ``tag``; removed afterwards. Pass it
    as ``-e wsnotify_source_dir=<path>``."""
    tree = Path(tempfile.mkdtemp()) / "service"
    try:
        shutil.copytree(SERVICE, tree, ignore=shutil.ignore_patterns("__pycache__", "tests"))
        init = tree / "src/wsnotify/__init__.py"
        init.write_text(init.read_text() + f"# release variant {tag}\n")
        yield tree
    finally:
        shutil.rmtree(tree.parent)
