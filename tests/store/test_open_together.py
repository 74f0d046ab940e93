"""Several processes opening one new store at the same moment all succeed (WAL switch and the
first migration race; SQLite answers "database is locked" there without its busy handler)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

OPEN_AND_LIST = """
import sys
from viewer.store import Store, list_studies
with Store.open(sys.argv[1]) as store:
    list_studies(store)
print("ok")
"""


def test_processes_opening_a_new_store_together(tmp_path: Path) -> None:
    for attempt in range(4):
        root = tmp_path / f"store{attempt}"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN_AND_LIST, str(root)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(4)
        ]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0 and out.strip() == "ok", err
