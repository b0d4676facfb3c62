"""Durability: SIGKILL the real server right after acknowledgements; after a restart every
acknowledged event is there.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from api_support import basic, settings_for

from jingzhun.api import build_context
from jingzhun.cli._serve import SETTINGS_ENV

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(project: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, SETTINGS_ENV: settings_for(project).model_dump_json()}
    code = (
        "import uvicorn; uvicorn.run('jingzhun.cli._serve:app_from_env', factory=True, "
        f"host='127.0.0.1', port={port}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code], env=env, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("the server did not start within 60 s")


def test_every_acknowledged_event_survives_sigkill(bare_project: Path) -> None:
    context = build_context(settings_for(bare_project))
    key = context.access.create_api_key("crash", ["collect"], created_by="test")
    context.close()
    port = _free_port()
    server = _start(bare_project, port)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def send(worker: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=basic(key)) as client:
            n = 0
            while not stop.is_set():
                n += 1
                ids = [f"w{worker}-{n}-{i}" for i in range(1 if n % 2 else 20)]
                batch = [
                    {"type": "track", "userId": f"u{worker}", "event": "Tested", "messageId": m}
                    for m in ids
                ]
                try:
                    answer = client.post("/v1/batch", json={"batch": batch}, timeout=5)
                except httpx.HTTPError:
                    return  # the server is gone: what was not acknowledged may be lost
                if answer.status_code == 200:
                    with lock:
                        acknowledged.extend(ids)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 30
        while len(acknowledged) < 3000 and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(server.pid, signal.SIGKILL)  # mid-stream: requests are in flight
        server.wait(timeout=10)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
        if server.poll() is None:
            server.kill()
    assert len(acknowledged) >= 3000

    server = _start(bare_project, port)
    try:
        more = httpx.post(
            f"http://127.0.0.1:{port}/v1/track",
            json={"userId": "u", "event": "After", "messageId": "after-restart"},
            headers=basic(key),
            timeout=5,
        )
        assert more.status_code == 200
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    with sqlite3.connect(bare_project / "state" / "collect" / "events.db") as db:
        stored = {row[0] for row in db.execute("SELECT message_id FROM collected")}
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
    assert "after-restart" in stored
