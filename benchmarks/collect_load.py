"""Load on the collection endpoint: batches of 100 and single events against ``jingzhun serve``.

Starts the server (uvicorn, ``--workers``, ``--http``, ``--loop``) on 127.0.0.1 over a fresh
project, then driver processes post Segment messages for ``--seconds`` per mode, each keeping
``--concurrency`` (batches: ``--batch-concurrency``) keep-alive connections with one request in
flight on each. Reports events/s, requests/s and latency percentiles into
``benchmarks/results/collect_load.json``, and checks that every acknowledged event is in the
collection log. Goal (issue 10): >= 20,000 events/s in batches of 100 and >= 2,000
single-event requests/s on 2 cores, p99 <= 50 ms.

The drivers share the server's two cores, so they are kept cheap: no HTTP library, but an
``asyncio.Protocol`` per connection that writes a pre-encoded HTTP/1.1 request (a unique
``messageId`` and the write key as Basic user name in each) and reads the status line and a
``Content-Length`` body back (about 20 µs of CPU a request, where httpx took 0.5-1 ms).

    python -m benchmarks.collect_load --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from jingzhun.api import ApiSettings, build_context
from jingzhun.cli._serve import SETTINGS_ENV
from jingzhun.core import init_project

RESULTS = Path(__file__).parent / "results" / "collect_load.json"
BATCH = 100  # messages a batch request

# one track message; {n}, {user}, {sku} are filled in per message
_TEMPLATE = json.dumps(
    {
        "type": "track",
        "userId": "user-@USER@",
        "event": "Product Viewed",
        "messageId": "@PREFIX@-@N@",
        "timestamp": "2024-06-01T12:00:00Z",
        "properties": {"sku": "SKU-@SKU@", "price": 19.99, "category": "Tea"},
        "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
    },
    separators=(",", ":"),
)
_FORMAT = (
    _TEMPLATE.replace("{", "{{")
    .replace("}", "}}")
    .replace("@USER@", "{user}")
    .replace("@PREFIX@", "{prefix}")
    .replace("@N@", "{n}")
    .replace("@SKU@", "{sku}")
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _message(prefix: str, n: int) -> str:
    return _FORMAT.format(user=n % 5000, prefix=prefix, n=n, sku=n % 977)


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight at a time."""

    def __init__(self, driver: _Driver) -> None:
        self.driver = driver
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.started = 0.0
        self.ids: list[str] = []
        self.waiting = False  # a request is out, its answer not read yet
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        """Post the next request, or close once the time is up."""
        assert self.transport is not None
        request = self.driver.next_request()
        if request is None:
            self.transport.close()
            return
        payload, self.ids = request
        self.buffer = b""
        self.waiting = True
        self.started = time.perf_counter()
        self.transport.write(payload)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buffer[:head_end].decode("latin-1").lower()
        length = 0
        keep_alive = True
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value)
            elif name == "connection" and "close" in value:
                keep_alive = False
        if len(self.buffer) < head_end + 4 + length:
            return
        status = int(head[9:12])
        self.waiting = False
        self.driver.record(time.perf_counter() - self.started, status, self.ids)
        if keep_alive:
            self.send_next()
        else:  # the server closed it: open another
            assert self.transport is not None
            self.transport.close()
            self.driver.reopen()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:  # no answer: not acknowledged; carry on over a new connection
            self.waiting = False
            self.driver.errors += 1
            self.driver.reopen()
        if not self.closed.done():
            self.closed.set_result(None)


class _Driver:
    """The requests of one process: builds them, counts answers, keeps connections open."""

    def __init__(
        self, port: int, key: str, mode: str, seconds: float, concurrency: int, prefix: str
    ) -> None:
        self.port = port
        self.mode = mode
        self.prefix = prefix
        self.concurrency = concurrency
        self.deadline = time.perf_counter() + seconds
        self.n = 0
        self.latencies: list[float] = []
        self.acked: list[str] = []
        self.errors = 0
        self.status: dict[int, int] = {}
        self.pending: set[asyncio.Task[None]] = set()
        auth = base64.b64encode(f"{key}:".encode()).decode()
        path = "/v1/batch" if mode == "batch" else "/v1/track"
        self.head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
            "User-Agent: jingzhun-collect-load\r\nContent-Length: "
        ).encode()

    def next_request(self) -> tuple[bytes, list[str]] | None:
        """Bytes of the next request and its messageIds; None after the deadline."""
        if time.perf_counter() >= self.deadline:
            return None
        self.n += 1
        if self.mode == "batch":
            base = self.n * BATCH
            ids = [f"{self.prefix}-{base + i}" for i in range(BATCH)]
            body = (
                '{"batch":['
                + ",".join(_message(self.prefix, base + i) for i in range(BATCH))
                + "]}"
            ).encode()
        else:
            ids = [f"{self.prefix}-{self.n}"]
            body = _message(self.prefix, self.n).encode()
        return self.head + str(len(body)).encode() + b"\r\n\r\n" + body, ids

    def record(self, seconds: float, status: int, ids: list[str]) -> None:
        """One answer: its latency, and its messages when it was a 200."""
        self.latencies.append(seconds)
        self.status[status] = self.status.get(status, 0) + 1
        if status == 200:
            self.acked.extend(ids)
        else:
            self.errors += 1

    def reopen(self) -> None:
        """Replace a connection the server closed (or that failed)."""
        task = asyncio.get_running_loop().create_task(self.connection())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def connection(self) -> None:
        """Run one connection until the deadline (requests answered in flight are counted)."""
        if time.perf_counter() >= self.deadline:
            return
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await loop.create_connection(
                lambda: _Connection(self), "127.0.0.1", self.port
            )
        except OSError:
            self.errors += 1
            await asyncio.sleep(0.05)
            self.reopen()
            return
        await protocol.closed

    async def run(self) -> dict[str, Any]:
        """Keep ``concurrency`` connections busy until the deadline."""
        started = time.process_time()
        await asyncio.gather(*(self.connection() for _ in range(self.concurrency)))
        while self.pending:
            await asyncio.gather(*list(self.pending))
        return {
            "latencies": self.latencies,
            "acked": self.acked,
            "errors": self.errors,
            "status": self.status,
            "cpu_seconds": time.process_time() - started,
        }


def _driver(args: tuple[int, str, str, float, int, str], out: mp.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_Driver(*args).run()))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of processes (from /proc; 0 where it is not readable)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def _server_pids(root: int) -> list[int]:
    """The server process and its workers (children)."""
    pids = [root]
    try:
        children = Path(f"/proc/{root}/task/{root}/children").read_text().split()
    except OSError:
        children = []
    return pids + [int(c) for c in children]


def run_mode(
    port: int,
    key: str,
    mode: str,
    seconds: float,
    drivers: int,
    concurrency: int,
    server_pid: int | None = None,
) -> tuple[dict[str, object], list[str]]:
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    processes = [
        mp.Process(
            target=_driver, args=((port, key, mode, seconds, concurrency, f"{mode}{d}"), queue)
        )
        for d in range(drivers)
    ]
    server = _server_pids(server_pid) if server_pid else []
    server_cpu = _cpu_seconds(server)
    started = time.perf_counter()
    for p in processes:
        p.start()
    parts = [queue.get() for _ in processes]
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - started
    server_cpu = _cpu_seconds(server) - server_cpu
    latencies = [x for part in parts for x in part["latencies"]]
    acked = [x for part in parts for x in part["acked"]]
    status: dict[str, int] = {}
    for part in parts:
        for code, count in part["status"].items():
            status[str(code)] = status.get(str(code), 0) + count
    requests = len(latencies)
    return (
        {
            "mode": mode,
            "seconds": round(elapsed, 2),
            "in_flight": drivers * concurrency,
            "requests": requests,
            "events_acknowledged": len(acked),
            "errors": sum(int(part["errors"]) for part in parts),
            "status_codes": status,
            "requests_per_second": round(requests / seconds, 1),
            "events_per_second": round(len(acked) / seconds, 1),
            "latency_ms": {
                "p50": round(_percentile(latencies, 0.50), 2),
                "p90": round(_percentile(latencies, 0.90), 2),
                "p99": round(_percentile(latencies, 0.99), 2),
                "max": round(max(latencies) * 1000 if latencies else 0.0, 2),
            },
            "cpu_seconds": {
                "server": round(server_cpu, 1),
                "drivers": round(sum(float(part["cpu_seconds"]) for part in parts), 1),
            },
        },
        acked,
    )


def _wait_healthy(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the server did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per mode")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--drivers", type=int, default=1, help="load-generating processes")
    parser.add_argument(
        "--concurrency", type=int, default=16, help="single events: connections each driver"
    )
    parser.add_argument(
        "--batch-concurrency", type=int, default=4, help="batches: connections each driver"
    )
    parser.add_argument(
        "--http", default="auto", choices=["auto", "h11", "httptools"], help="uvicorn's parser"
    )
    parser.add_argument(
        "--loop", default="auto", choices=["auto", "asyncio", "uvloop"], help="uvicorn's loop"
    )
    parser.add_argument(
        "--modes", default="batch,single", help="comma-separated: batch, single (both)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    modes_wanted = [m.strip() for m in args.modes.split(",") if m.strip()]
    load_before = [round(x, 2) for x in os.getloadavg()]

    with tempfile.TemporaryDirectory(prefix="jz-collect-bench-") as folder:
        project = init_project(Path(folder) / "bench", name="bench", timezone="UTC")
        settings = ApiSettings(project=project, load_interval_seconds=0)
        context = build_context(settings)
        key = context.access.create_api_key("bench", ["collect"], created_by="bench")
        context.close()
        port = _free_port()
        env = {**os.environ, SETTINGS_ENV: settings.model_dump_json()}
        code = (
            "import uvicorn; uvicorn.run('jingzhun.cli._serve:app_from_env', factory=True, "
            f"host='127.0.0.1', port={port}, workers={args.workers}, log_level='warning', "
            f"access_log=False, http={args.http!r}, loop={args.loop!r})"
        )
        server = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
        try:
            _wait_healthy(f"http://127.0.0.1:{port}", 120)
            time.sleep(2)  # every worker up
            modes = []
            acked: list[str] = []
            for mode in modes_wanted:
                concurrency = args.batch_concurrency if mode == "batch" else args.concurrency
                figures, ids = run_mode(
                    port, key, mode, args.seconds, args.drivers, concurrency, server.pid
                )
                modes.append(figures)
                acked.extend(ids)
                print(json.dumps(figures), flush=True)
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)
        with sqlite3.connect(project / "state" / "collect" / "events.db") as db:
            stored = {row[0] for row in db.execute("SELECT message_id FROM collected")}
        missing = len(set(acked) - stored)

    installed = {
        name: importlib.util.find_spec(name) is not None for name in ("httptools", "uvloop")
    }
    # what uvicorn's "auto" picks: httptools and uvloop when they are installed
    http = args.http if args.http != "auto" else ("httptools" if installed["httptools"] else "h11")
    loop = args.loop if args.loop != "auto" else ("uvloop" if installed["uvloop"] else "asyncio")
    result = {
        "benchmark": "collect_load",
        "what": "Segment /v1/batch (100 events) and /v1/track (1 event) against jingzhun serve",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "server": (
                f"uvicorn, {args.workers} worker(s), http={http}, loop={loop}; collection fast "
                "path (bare ASGI); group commit into SQLite WAL synchronous=FULL"
            ),
            "load_generator": (
                "asyncio.Protocol per keep-alive connection, pre-encoded HTTP/1.1 requests, "
                "one in flight each, on the same cores"
            ),
        },
        # the output named by file name only: no path of this machine in the results
        "settings": vars(args) | {"out": args.out.name},
        "modes": modes,
        "acknowledged_events_missing_from_log": missing,
        "goal": {
            "batch_events_per_second": 20_000,
            "single_requests_per_second": 2_000,
            "p99_ms": 50,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
