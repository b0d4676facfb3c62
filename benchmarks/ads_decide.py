"""Ad decision latency with 100 live campaigns: in process, and over HTTP through a real
uvicorn server on 127.0.0.1 driven from a second process.

A generated GB shop (``JZ_BENCH_ADS_CUSTOMERS``, default 3,000 customers) is loaded and built;
100 campaigns are written to ``ads/``: 90 targeted (gender, age ranges, regions, interests,
combinations) and 10 untargeted, two or three creatives each, frequency caps on half, flights
around today, budgets no request can exhaust. Requests come from the shop's people (60 %, by
``customer_key``, ``customer_id`` or ``anonymous_id``) and unknown visitors, on three placements.

- ``in_process``: ``AdServer.decide`` called directly (impressions logged by the writer thread
  into SQLite meanwhile), ``JZ_BENCH_ADS_DECISIONS`` calls (default 20,000).
- ``http``: ``POST /ads/decide`` to ``uvicorn`` (one worker, ``ads_router``) from this process
  over one keep-alive connection; client-side latency, and server-side from the
  ``Server-Timing`` header (the decision itself).
- ``http_4_clients``: the same from four client threads at once (throughput, tail latency).

Target (issue 12, item 2): p99 <= 10 ms with 100 live campaigns on 2 cores.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import random
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CUSTOMERS = int(os.environ.get("JZ_BENCH_ADS_CUSTOMERS", "3000"))
DECISIONS = int(os.environ.get("JZ_BENCH_ADS_DECISIONS", "20000"))
PLACEMENTS = ("app_home", "site_sidebar", "store_screen")
CITIES = ("London", "Manchester", "Birmingham", "Leeds", "Glasgow", "Bristol", "Liverpool")
INTERESTS = ("apparel", "beauty", "electronics", "home", "grocery", "toys", "sports", "books")


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "n": len(ordered),
        "p50_ms": round(at(0.50), 4),
        "p90_ms": round(at(0.90), 4),
        "p99_ms": round(at(0.99), 4),
        "max_ms": round(ordered[-1], 4),
        "mean_ms": round(statistics.fmean(ordered), 4),
    }


def _campaigns(today: dt.date) -> dict[str, str]:
    rng = random.Random(12)
    out = {}
    for n in range(100):
        lines = [f"name: c{n:03d}", f"category: {INTERESTS[n % len(INTERESTS)]}"]
        if n >= 10:  # 90 targeted, 10 for everyone
            lines.append("targeting:")
            kind = n % 5
            if kind in (0, 3):
                lines.append(f"  gender: [{'F' if n % 2 else 'M'}]")
            if kind in (1, 3, 4):
                low = rng.choice((18, 25, 35, 45))
                lines.append(f"  age: {{min: {low}, max: {low + rng.choice((9, 19, 29))}}}")
            if kind in (2, 4):
                lines.append(f"  region: [{', '.join(rng.sample(CITIES, 3))}]")
            if kind in (0, 2, 3) or n % 7 == 0:
                lines.append(f"  interests: [{', '.join(rng.sample(INTERESTS, 2))}]")
        start, end = today - dt.timedelta(days=1), today + dt.timedelta(days=30)
        lines += [
            f"max_cpc: {rng.uniform(0.2, 2.0):.2f}",
            "daily_budget: 1000000",
            f"flight: {{start: {start}, end: {end}}}",
        ]
        if n % 2:
            lines.append("frequency_cap: {impressions: 5, per_hours: 24}")
        lines.append("creatives:")
        for k in range(2 + n % 2):
            lines.append(
                f"  - {{name: v{k}, title: Ad {n} {k}, landing_url: https://shop.example/{n}/{k}}}"
            )
        out[f"c{n:03d}"] = "\n".join(lines) + "\n"
    return out


def _build(root: Path) -> None:
    from jingzhun.core import init_project
    from jingzhun.datagen import generate, source_specs
    from jingzhun.workspace import Workspace

    init_project(root, name="adsbench", timezone="Europe/London", currency="GBP", region="GB")
    generate(root / "data" / "generated", customers=CUSTOMERS, days=180, seed=7, region="GB",
             start=dt.date.today() - dt.timedelta(days=180))  # fmt: skip
    for stem, text in source_specs("data/generated").items():
        (root / "sources" / f"gen_{stem}.yml").write_text(text, encoding="utf-8")
    (root / "tags" / "_settings.yml").write_text("include_late_loads: true\n", encoding="utf-8")
    (root / "ads").mkdir()
    for name, text in _campaigns(dt.date.today()).items():
        (root / "ads" / f"{name}.yml").write_text(text, encoding="utf-8")
    with Workspace.open(root) as ws:
        ws.ingest.run()
        ws.build(dt.date.today(), probabilistic=False)


def _requests(index: Any, count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    keys = list(index.people)
    ids = list(index.customer_ids)
    devices = list(index.devices)
    out = []
    for n in range(count):
        body: dict[str, Any] = {"placement": rng.choice(PLACEMENTS), "device_id": f"d{n % 5000}"}
        r = rng.random()
        if r < 0.3:
            body["customer_key"] = rng.choice(keys)
        elif r < 0.45:
            body["customer_id"] = rng.choice(ids)
        elif r < 0.6:
            body["anonymous_id"] = rng.choice(devices)
        else:
            body["anonymous_id"] = f"visitor-{rng.randrange(100_000)}"
        body["ip"] = f"81.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        out.append(body)
    return out


def _serve(root: str, port: int, ready: Any) -> None:
    import uvicorn
    from fastapi import FastAPI

    from jingzhun.ads import ads_router, open_ad_server
    from jingzhun.workspace import Workspace

    ws = Workspace.open(root)
    server = open_ad_server(ws.project, ws.engine, ws.store)
    app = FastAPI()
    app.include_router(ads_router(server))
    ready.set()
    try:
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    finally:
        server.close()
        ws.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _drive(port: int, bodies: list[dict[str, Any]]) -> tuple[list[float], list[float], int]:
    import httpx

    client_ms, server_ms, served = [], [], 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for body in bodies:
            started = time.perf_counter()
            answer = client.post("/ads/decide", json=body)
            client_ms.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            timing = answer.headers["server-timing"]
            server_ms.append(float(timing.split("dur=")[1]))
            served += answer.json()["ad"] is not None
    return client_ms, server_ms, served


def main() -> None:
    from jingzhun.ads import DecideRequest, open_ad_server
    from jingzhun.workspace import Workspace

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jz-ads-bench-") as folder:
        root = Path(folder) / "shop"
        _build(root)
        build_seconds = time.perf_counter() - started
        with Workspace.open(root) as ws:
            t = time.perf_counter()
            server = open_ad_server(ws.project, ws.engine, ws.store)
            index_seconds = time.perf_counter() - t
            index = server.index
            live = sum(1 for c in index.campaigns if c.spec.live_on(dt.date.today()))
            bodies = _requests(index, DECISIONS, seed=1)
            for body in bodies[:1000]:  # warm up
                server.decide(DecideRequest(**body))
            latencies, served, candidates = [], 0, []
            for body in bodies:
                t = time.perf_counter()
                decision = server.decide(DecideRequest(**body))
                latencies.append((time.perf_counter() - t) * 1000)
                if decision is not None:
                    served += 1
                    candidates.append(decision.candidates)
            server.close()
            in_process = {
                **_percentiles(latencies),
                "served": served,
                "mean_candidates": round(statistics.fmean(candidates), 1) if candidates else 0,
            }
            people = len(index.people)
            sizes = index.audience_sizes
        print(json.dumps({"in_process": in_process}), flush=True)

        ctx = mp.get_context("spawn")
        port = _free_port()
        ready = ctx.Event()
        process = ctx.Process(target=_serve, args=(str(root), port, ready), daemon=True)
        process.start()
        try:
            ready.wait(120)
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    time.sleep(0.1)
            http_bodies = _requests(index, DECISIONS, seed=2)
            _drive(port, http_bodies[:1000])  # warm up
            client_ms, server_ms, http_served = _drive(port, http_bodies)
            http = {
                "client": _percentiles(client_ms),
                "server": _percentiles(server_ms),
                "served": http_served,
            }
            print(json.dumps({"http": http}), flush=True)
            parts: list[tuple[list[float], list[float], int]] = []
            chunk = len(http_bodies) // 4
            threads = [
                threading.Thread(
                    target=lambda k=k: parts.append(
                        _drive(port, http_bodies[k * chunk : (k + 1) * chunk])
                    )
                )
                for k in range(4)
            ]
            t = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - t
            concurrent = {
                "client": _percentiles([x for p in parts for x in p[0]]),
                "server": _percentiles([x for p in parts for x in p[1]]),
                "requests_per_second": round(4 * chunk / wall, 1),
            }
            print(json.dumps({"http_4_clients": concurrent}), flush=True)
        finally:
            process.terminate()
            process.join(10)
    summary = {
        "benchmark": "ads_decide",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "customers": people,
        "live_campaigns": live,
        "targeted_audience_sizes": {
            "min": min(sizes.values()),
            "median": statistics.median(sizes.values()),
            "max": max(sizes.values()),
        },
        "build_seconds": round(build_seconds, 1),
        "index_seconds": round(index_seconds, 2),
        "in_process": in_process,
        "http": http,
        "http_4_clients": concurrent,
        "target": "p99 <= 10 ms",
        "met": http["client"]["p99_ms"] <= 10 and http["server"]["p99_ms"] <= 10,
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "ads_decide.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
