"""Measure the bundled IdP's start-up: construction plus one minted access token."""

from __future__ import annotations

import statistics
import time


def main() -> None:
    t0 = time.perf_counter()
    from rs_guard.idp import IdP

    import_ms = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(20):
        t = time.perf_counter()
        idp = IdP("https://idp.example")
        idp.issue_access_token(
            "alice", client_id="client-a", audience="https://api.example", scope="items:read"
        )
        runs.append((time.perf_counter() - t) * 1000)
    print(f"import rs_guard.idp (cold, once): {import_ms:.1f} ms")
    print(
        f"IdP() + one ES256 access token: first {runs[0]:.2f} ms, "
        f"median {statistics.median(runs):.2f} ms, max {max(runs):.2f} ms over {len(runs)} runs"
    )


if __name__ == "__main__":
    main()
