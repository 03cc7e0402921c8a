"""The plumbing every benchmark shares: in-process driving, a uvicorn server process per
variant, wrk, GC / CPU / RSS readings and the median [min-max] summary.

One implementation of each, so that two scripts measuring the same thing measure it the same
way (peers.py, throughput.py and features.py use it):

* `drive()` calls an ASGI app directly, one request at a time, and rates it per second of this
  thread's CPU time (on a shared machine wall time also counts whatever else ran);
* `start_server()` binds a loopback socket here (so the port is known and nothing races for
  it) and runs `<script> --serve ... --fd N` in a fresh process; the script's server side calls
  `serve_main(app, fd)`, which answers `reset` / `stats` on stdin (GC counts and pauses from
  `gc.callbacks`, RSS growth) and stops at EOF;
* `run_wrk()` drives it with wrk (`--latency`, a Lua script rotating the Authorization values
  of a file), returning requests/s, p50/p99 and whether any answer was not 2xx.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp

ISSUER = "https://idp.bench"
RESOURCE = "https://api.bench/items"

# --------------------------------------------------------------------------------------------
# in-process

SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "https",
    "path": "/hello",
    "raw_path": b"/hello",
    "root_path": "",
    "query_string": b"",
    "server": ("api.bench", 443),
    "client": ("127.0.0.1", 50000),
}
HOST = (b"host", b"api.bench")
_BODY = {"type": "http.request", "body": b"", "more_body": False}


async def _receive() -> dict[str, Any]:
    return _BODY


def auth_headers(tokens: Sequence[str], scheme: str = "Bearer") -> list[bytes]:
    return [f"{scheme} {t}".encode() for t in tokens]


async def call_app(app: ASGIApp, auth: bytes, extra: Sequence[tuple[bytes, bytes]] = ()) -> int:
    """One request through the app; its status."""
    status = 0

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {**SCOPE, "headers": [HOST, (b"authorization", auth), *extra]}
    await app(scope, _receive, send)
    return status


async def drive(
    app: ASGIApp,
    auths: Sequence[bytes],
    *,
    seconds: float,
    limit: int,
    extra: Sequence[Sequence[tuple[bytes, bytes]]] | None = None,
) -> tuple[float, int]:
    """Requests per second of CPU time calling the app directly, one at a time, for `seconds`
    or `limit` requests (a cold run must not reuse a token); every answer must be 200.

    `extra[i]` are more headers for request i (a DPoP proof each); the scope is built the same
    way for every variant, so building it costs them all alike.
    """
    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    count = len(auths)
    n = 0
    # A new bytes object per request, as a server parses it (a reused one would carry its
    # cached hash into anything keyed by the header value).
    fresh = bytes
    # Everything in-process runs on this thread (the loopback IdP's thread, if any, is idle).
    cpu = time.thread_time()
    deadline = time.perf_counter() + seconds
    if extra is None:
        while n < limit:
            for _ in range(min(50, limit - n)):
                headers = [HOST, (b"authorization", fresh(memoryview(auths[n % count])))]
                await app({**SCOPE, "headers": headers}, _receive, send)
                n += 1
            if time.perf_counter() >= deadline:
                break
    else:
        limit = min(limit, len(extra))
        while n < limit:
            for _ in range(min(50, limit - n)):
                auth = fresh(memoryview(auths[n % count]))
                headers = [HOST, (b"authorization", auth), *extra[n]]
                await app({**SCOPE, "headers": headers}, _receive, send)
                n += 1
            if time.perf_counter() >= deadline:
                break
    elapsed = time.thread_time() - cpu
    bad = {s for s in statuses if s != 200}
    if bad:
        raise RuntimeError(f"unexpected statuses {bad}")
    return n / elapsed, n


# --------------------------------------------------------------------------------------------
# GC, CPU and memory readings


class GCWatch:
    """gc.callbacks hook: number of collections per generation and the longest pauses."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts = [0, 0, 0]
        self.longest = 0.0
        self.longest_gen2 = 0.0
        self.total = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        pause = time.perf_counter() - self._start
        generation = info.get("generation", 0)
        self.counts[generation] += 1
        self.total += pause
        self.longest = max(self.longest, pause)
        if generation == 2:
            self.longest_gen2 = max(self.longest_gen2, pause)

    def summary(self) -> dict[str, Any]:
        return {
            "gen2": self.counts[2],
            "collections": sum(self.counts),
            "longest_ms": self.longest * 1e3,
            "longest_gen2_ms": self.longest_gen2 * 1e3,
            "total_ms": self.total * 1e3,
        }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc), all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --------------------------------------------------------------------------------------------
# a uvicorn server process per variant


def serve_main(app: ASGIApp, fd: int, banner: str = "") -> None:
    """The server process's side: `app` under uvicorn on the socket the driver bound; prints
    `ready <banner>`, then answers commands on stdin (reset: zero the GC counters; stats: print
    them as JSON); EOF ends it."""
    from rs_guard.testing import serve

    watch = GCWatch()
    gc.callbacks.append(watch)
    sock = socket.socket(fileno=fd)
    with serve(app, sock=sock, lifespan="off"):
        print(f"ready {banner}".rstrip(), flush=True)
        rss0 = rss_mb()
        for line in sys.stdin:
            command = line.strip()
            if command == "reset":
                watch.reset()
                rss0 = rss_mb()
                print("ok", flush=True)
            elif command == "stats":
                stats = {**watch.summary(), "rss_growth_mb": rss_mb() - rss0, "rss_mb": rss_mb()}
                print(json.dumps(stats), flush=True)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    banner: str = ""

    def ready(self) -> bool:
        """Wait for the server's `ready` line (its banner is kept)."""
        if self.proc.stdout is None:
            return False
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready"):
            return False
        self.banner = line[len("ready") :].strip()
        return True

    def command(self, text: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(
    script: Path | str, args: Sequence[str], env: dict[str, str] | None = None
) -> Server:
    """`python <script> <args> --fd N` on a loopback socket bound here (no port race); `env`
    adds to the environment (PYTHONPATH: another copy of rs_guard, e.g. a baseline)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(script), *args, "--fd", str(sock.fileno())],
        pass_fds=[sock.fileno()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=None if env is None else {**os.environ, **env},
    )
    sock.close()
    return Server(proc, port)


def http_get(port: int, auths: Sequence[bytes], path: str = "/hello") -> list[int]:
    """A few keep-alive requests with a tiny blocking client (the warm-up before wrk)."""
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        stream = conn.makefile("rb")
        for auth in auths:
            conn.sendall(
                f"GET {path} HTTP/1.1\r\nHost: api.bench\r\nAuthorization: ".encode()
                + auth
                + b"\r\n\r\n"
            )
            status = int(stream.readline().split()[1])
            length = 0
            while (line := stream.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            stream.read(length)
            statuses.append(status)
    return statuses


WRK_LUA = """
local auths = {}
for line in io.lines(os.getenv("RS_GUARD_AUTHS")) do auths[#auths + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/hello", {["Authorization"] = auths[((i - 1) % #auths) + 1]})
end
"""


def write_auths(path: str, auths: Sequence[bytes]) -> str:
    """A file of Authorization values, one a line, for `run_wrk`."""
    Path(path).write_bytes(b"\n".join(auths) + b"\n")
    return path


def parse_duration_ms(text: str) -> float:
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3), ("m", 60e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def run_wrk(port: int, auths_file: str, seconds: int, connections: int) -> dict[str, Any]:
    """wrk -t1 against the server: rate, requests, p50/p75/p90/p99 (ms), non2xx."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_LUA)
        script = f.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                script,
                f"http://127.0.0.1:{port}/hello",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "RS_GUARD_AUTHS": auths_file},
            check=True,
            timeout=seconds + 30,
        ).stdout
    finally:
        os.unlink(script)
    result: dict[str, Any] = {"non2xx": "Non-2xx" in out}
    lines = out.splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["rate"] = float(parts[1])
        elif "requests in" in line:
            result["requests"] = int(parts[0])
        elif line.strip().startswith("Latency Distribution"):
            for sub in lines[i + 1 : i + 5]:
                pct, value = sub.split()
                result[f"p{pct.rstrip('%')}"] = parse_duration_ms(value)
    if "rate" not in result:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return result


def measure_server(
    server: Server, auths_file: str, warmup: Sequence[bytes], seconds: int, connections: int
) -> dict[str, Any]:
    """Warm the server up, then one wrk run: wrk's figures plus the server's CPU µs per request
    (from /proc) and its GC / RSS stats over the run."""
    statuses = http_get(server.port, warmup)
    if set(statuses) != {200}:
        raise RuntimeError(f"warm-up statuses {set(statuses)}")
    server.command("reset")
    cpu = cpu_seconds(server.proc.pid)
    out = run_wrk(server.port, auths_file, seconds, connections)
    used = cpu_seconds(server.proc.pid) - cpu
    out["stats"] = json.loads(server.command("stats"))
    if out.get("requests"):
        out["cpu_us"] = used / out["requests"] * 1e6
    return out


# --------------------------------------------------------------------------------------------
# summaries


def spread(values: Sequence[float], fmt: str = ".1f") -> str:
    """`median [min-max]` of the rounds."""
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med:{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"
