"""`make bench`: every benchmark of the project, one after another, each printing its ratios.

.venv/bin/python benchmarks/run_all.py [--quick]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

PLAN = [
    (
        "rs_guard vs its peers (PyJWT, authlib, joserfc, MCP SDK, fastmcp): in-process, uvicorn + wrk, memory",
        "peers.py",
        [],
        ["--quick"],
    ),
    (
        "memory and GC under sustained cold load: gen-2 pauses, RSS growth vs the cache's bound",
        "memory.py",
        [],
        ["--quick"],
    ),
    ("strictness: validly signed tokens a resource server must refuse", "strictness.py", [], []),
    (
        "every feature's cost on the warm path (profiles, requirements, PPID, observers, DPoP, "
        "revocations), side by side",
        "features.py",
        [],
        ["--quick"],
    ),
    (
        "throughput: bare vs guard (warm/cold) vs PyJWT per request",
        "throughput.py",
        [],
        ["--rounds", "1", "--tokens", "4000"],
    ),
    ("IdP start-up + first token", "idp_startup.py", [], []),
    ("PPID translation: IdP calls and warm-cache cost", "ppid.py", [], ["--rounds", "10"]),
    ("webhook events per second (memory / Redis)", "events.py", [], ["--rounds", "1"]),
    ("load and soak through uvicorn", "soak.py", ["--seconds", "60"], ["--seconds", "15"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier figures)")
    args = parser.parse_args()
    failed = []
    for title, script, full, quick in PLAN:
        print(f"\n##### {title} ({script})", flush=True)
        start = time.perf_counter()
        code = subprocess.call(
            [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        )
        print(f"##### {script}: exit {code} in {time.perf_counter() - start:.0f}s", flush=True)
        if code != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
