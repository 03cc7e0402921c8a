"""`python -m rs_guard demo`: run the walk-through in `examples/demo.py` of a source checkout."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path


def main() -> int:
    """Run the demo; it lives with the examples, which are not part of the installed package."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "examples" / "demo.py").is_file():
        print(
            "The demo needs a source checkout of rs_guard (examples/demo.py); run `make demo`.",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(root))
    try:
        runpy.run_module("examples.demo", run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
