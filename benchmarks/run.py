"""Run every ``benchmarks/bench_*.py`` (or those named on the command line); always exit 0."""

from __future__ import annotations

import runpy
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE))
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in names:
        path = HERE / (name if name.endswith(".py") else f"{name}.py")
        print(f"== {path.stem}", flush=True)
        try:
            runpy.run_path(str(path), run_name="__main__")
        except SystemExit:
            pass
        except Exception:
            traceback.print_exc()
            print(f"bench: {path.stem} failed (see above)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
