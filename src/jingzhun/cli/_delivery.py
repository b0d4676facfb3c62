"""``jingzhun worker``: send the delivery queue's due messages through ``delivery.yml``'s channels.

``register(app)`` adds the command to the ``jingzhun`` application.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.table import Table

from jingzhun.cli._common import JsonOption, ProjectOption, handles_errors, out, print_json
from jingzhun.delivery import (
    DeliveryLog,
    Worker,
    build_channels,
    load_delivery_settings,
)
from jingzhun.workspace import Workspace


def register(app: typer.Typer) -> None:
    """Add ``jingzhun worker`` to ``app``."""
    app.command("worker")(worker)


@handles_errors
def worker(
    once: Annotated[
        bool, typer.Option("--once", help="Send what is due now, then stop (for cron and CI).")
    ] = False,
    worker_id: Annotated[
        str | None,
        typer.Option(help="Unique among running workers (default: this machine's name)."),
    ] = None,
    resend_in_doubt: Annotated[
        bool,
        typer.Option(
            "--resend-in-doubt",
            help="First let messages held as in_doubt go again (after checking they did not "
            "arrive, or accepting a possible duplicate).",
        ),
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Send due messages from the delivery queue, each exactly once (channels in delivery.yml).

    Runs until SIGTERM or Ctrl-C (the current batch is finished first), or once with --once.
    """
    with Workspace.open(project) as ws:
        root = ws.project.root
        settings = load_delivery_settings(root)
        channels = build_channels(settings, root=root, region=ws.project.settings.region)
        store = ws.store
        released = DeliveryLog(store).resend_in_doubt() if resend_in_doubt else 0
        name = worker_id or socket.gethostname()
        run = Worker(
            store,
            channels,
            ws.delivery.render,
            batch_size=settings.worker.batch_size,
            rate_limits=settings.rate_limits(),
            backoff=settings.backoff(),
            lease_seconds=settings.worker.lease_seconds,
            settle_seconds=settings.worker.settle_seconds,
            in_doubt=settings.in_doubt(),
            worker_id=name,
            journal=root / "state" / "delivery" / f"{name}.journal",
        )
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():  # asked twice: stop now (claims in flight are recovered later)
                raise KeyboardInterrupt
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        run_id = store.start_run("worker", ws.project.name)
        try:
            with run:
                if once:
                    report = run.run_once(stop)
                else:
                    if not as_json:
                        out.print(
                            f"worker {run.worker_id}: sending through {', '.join(sorted(channels))}"
                            f" every {settings.worker.poll_seconds:g} s; Ctrl-C stops",
                            highlight=False,
                        )
                    report = run.run_forever(settings.worker.poll_seconds, stop)
        except Exception as exc:
            store.finish_run(run_id, "failed", {}, error=str(exc))
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        summary = {**report.to_dict(), "released_in_doubt": released}
        store.finish_run(run_id, "ok", summary)
    if as_json:
        print_json(summary)
        return
    table = Table(title="delivery", title_justify="left")
    table.add_column("messages")
    table.add_column("count", justify="right")
    for key, value in summary.items():
        if key != "seconds":
            table.add_row(key, f"{value:,}")
    out.print(table)
    out.print(f"{summary['seconds']:.1f} s", highlight=False)
