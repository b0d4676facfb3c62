"""Load on the collection endpoint: batches of 100 and single events against ``jingzhun serve``.

Starts the server (uvicorn, ``--workers``) on 127.0.0.1 over a fresh project, then driver
processes (httpx, keep-alive, ``--concurrency`` requests in flight each) post Segment
messages for ``--seconds`` per mode. Reports events/s, requests/s and latency percentiles
into ``benchmarks/results/collect_load.json``, and checks that every acknowledged event is in
the collection log. Goal (issue 10): >= 20,000 events/s in batches of 100 and >= 2,000
single-event requests/s on 2 cores, p99 <= 50 ms.

    python benchmarks/collect_load.py --seconds 20 --workers 2 --drivers 2
"""

from __future__ import annotations

import argparse
import asyncio
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
from pathlib import Path

import httpx

from jingzhun.api import ApiSettings, build_context
from jingzhun.cli._serve import SETTINGS_ENV
from jingzhun.core import init_project

RESULTS = Path(__file__).parent / "results" / "collect_load.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _message(prefix: str, n: int) -> dict[str, object]:
    return {
        "type": "track",
        "userId": f"user-{n % 5000}",
        "event": "Product Viewed",
        "messageId": f"{prefix}-{n}",
        "timestamp": "2024-06-01T12:00:00Z",
        "properties": {"sku": f"SKU-{n % 977}", "price": 19.99, "category": "Tea"},
        "context": {"library": {"name": "analytics-python", "version": "2.3.3"}},
    }


async def _drive(
    url: str, key: str, mode: str, seconds: float, concurrency: int, prefix: str
) -> dict[str, object]:
    latencies: list[float] = []
    acked: list[str] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, auth=(key, ""), limits=limits, timeout=30) as client:

        async def loop(worker: int) -> None:
            nonlocal errors
            n = 0
            while time.perf_counter() < deadline:
                n += 1
                if mode == "batch":
                    base = (worker * 10_000_000 + n) * 100
                    messages = [_message(prefix, base + i) for i in range(100)]
                    path, body = "/v1/batch", {"batch": messages}
                else:
                    messages = [_message(prefix, worker * 10_000_000 + n)]
                    path, body = "/v1/track", messages[0]
                started = time.perf_counter()
                try:
                    answer = await client.post(path, json=body)
                except httpx.HTTPError:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if answer.status_code == 200:
                    acked.extend(str(m["messageId"]) for m in messages)
                else:
                    errors += 1

        await asyncio.gather(*(loop(w) for w in range(concurrency)))
    return {"latencies": latencies, "acked": acked, "errors": errors}


def _driver(args: tuple[str, str, str, float, int, str], out: mp.Queue) -> None:  # type: ignore[type-arg]
    out.put(asyncio.run(_drive(*args)))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0


def run_mode(
    url: str, key: str, mode: str, seconds: float, drivers: int, concurrency: int
) -> tuple[dict[str, object], list[str]]:
    queue: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    processes = [
        mp.Process(
            target=_driver, args=((url, key, mode, seconds, concurrency, f"{mode}{d}"), queue)
        )
        for d in range(drivers)
    ]
    started = time.perf_counter()
    for p in processes:
        p.start()
    parts = [queue.get() for _ in processes]
    for p in processes:
        p.join()
    elapsed = time.perf_counter() - started
    latencies = [x for part in parts for x in part["latencies"]]
    acked = [x for part in parts for x in part["acked"]]
    requests = len(latencies)
    return (
        {
            "mode": mode,
            "seconds": round(elapsed, 2),
            "requests": requests,
            "events_acknowledged": len(acked),
            "errors": sum(int(part["errors"]) for part in parts),
            "requests_per_second": round(requests / seconds, 1),
            "events_per_second": round(len(acked) / seconds, 1),
            "latency_ms": {
                "p50": round(_percentile(latencies, 0.50), 2),
                "p90": round(_percentile(latencies, 0.90), 2),
                "p99": round(_percentile(latencies, 0.99), 2),
                "max": round(max(latencies) * 1000 if latencies else 0.0, 2),
            },
        },
        acked,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="per mode")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--drivers", type=int, default=2, help="load-generating processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight each")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

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
            "access_log=False)"
        )
        server = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("the server did not start")
                time.sleep(0.2)
            time.sleep(2)  # every worker up
            modes = []
            acked: list[str] = []
            for mode in ("batch", "single"):
                figures, ids = run_mode(
                    url, key, mode, args.seconds, args.drivers, args.concurrency
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

    result = {
        "benchmark": "collect_load",
        "what": "Segment /v1/batch (100 events) and /v1/track (1 event) against jingzhun serve",
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "server": "uvicorn (h11, asyncio loop), group commit into SQLite WAL synchronous=FULL",
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
