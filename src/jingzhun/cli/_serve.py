"""``jingzhun serve``, ``jingzhun collect``, ``jingzhun user`` and ``jingzhun apikey``.

``register(app)`` adds the commands to the ``jingzhun`` Typer application.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from fastapi import FastAPI
from rich.table import Table

from jingzhun.api import ApiSettings, build_context, create_app
from jingzhun.cli._common import JsonOption, ProjectOption, err, handles_errors, out, print_json
from jingzhun.core import ExitCode, Role

SETTINGS_ENV = "JINGZHUN_SERVE_SETTINGS"

collect_app = typer.Typer(help="Collected events: load them into the warehouse, look at them.")
user_app = typer.Typer(help="Console users and their roles.")
apikey_app = typer.Typer(help="API keys and their scopes (collect, read, write, admin).")


def app_from_env() -> FastAPI:
    """The application for uvicorn's worker processes (settings passed in the environment)."""
    settings = ApiSettings.model_validate_json(os.environ[SETTINGS_ENV])
    return create_app(settings)


@handles_errors
def serve(
    project: ProjectOption = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (about one per core).")] = 1,
    load_interval: Annotated[
        float,
        typer.Option(help="Seconds between loads of collected events (0: only 'collect flush')."),
    ] = 10.0,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve the HTTP API, event collection, tracking, unsubscribe and the console."""
    import uvicorn

    settings = ApiSettings(project=project.resolve(), load_interval_seconds=load_interval)
    build_context(settings).close()  # fail here, with a clear error, before forking workers
    os.environ[SETTINGS_ENV] = settings.model_dump_json()
    out.print(
        f"jingzhun serving [bold]{settings.root}[/] on http://{host}:{port} "
        f"({workers} worker(s)); OpenAPI at /docs and /openapi.json"
    )
    uvicorn.run(
        "jingzhun.cli._serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
        # Named, not "auto": with several workers uvicorn binds the socket itself and the
        # asyncio loop then leaves Nagle's algorithm on, so every keep-alive answer waits
        # ~40 ms for a delayed ACK (uvicorn #3149); uvloop sets TCP_NODELAY on every
        # connection. Both are pinned dependencies.
        loop="uvloop",
        http="httptools",
    )


@collect_app.command("flush")
@handles_errors
def collect_flush(
    project: ProjectOption = Path("."),
    no_refresh: Annotated[
        bool, typer.Option("--no-refresh", help="Load only; do not rebuild profiles/segments.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Load every collected event waiting into the warehouse, then refresh profiles and
    segments (what the server's background loader does every few seconds).
    """
    settings = ApiSettings(project=project.resolve(), load_interval_seconds=0)
    context = build_context(settings)
    try:
        result = context.loader.run_once(refresh=not no_refresh, wait_seconds=30)
        stats = context.log.stats()
    finally:
        context.close()
    if as_json:
        print_json({**result.to_dict(), "log": stats})
    else:
        out.print(
            f"{result.messages:,} message(s) read, {result.events_loaded:,} event(s) and "
            f"{result.customers_loaded:,} customer record(s) loaded, "
            f"{result.duplicates:,} duplicate(s); refreshed: {result.refreshed}; "
            f"{stats['waiting']:,} waiting ({result.seconds:.1f} s)"
        )
    if result.error:
        err.print(f"[bold red]error:[/] {result.error}", highlight=False)
        raise typer.Exit(int(ExitCode.ENGINE_ERROR))


@collect_app.command("status")
@handles_errors
def collect_status(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """How many events are stored, loaded and waiting."""
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        stats = context.log.stats()
    finally:
        context.close()
    if as_json:
        print_json(stats)
    else:
        out.print(
            f"{stats['stored']:,} stored, loaded up to #{stats['loaded_seq']:,}, "
            f"{stats['waiting']:,} waiting"
        )


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        err.print("[bold red]error:[/] the passwords differ")
        raise typer.Exit(int(ExitCode.SPEC_ERROR))
    return first


@user_app.command("add")
@handles_errors
def user_add(
    name: Annotated[str, typer.Argument(help="User name (letters, digits, _ . @ -).")],
    role: Annotated[Role, typer.Option(help="admin, marketer, analyst or viewer.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Add a console user with a role (the password is asked for, or read from stdin)."""
    password = _password(password_stdin)
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        context.access.add_user(name, role, password)
    finally:
        context.close()
    if as_json:
        print_json({"user": name, "role": role.value})
    else:
        out.print(f"user [bold]{name}[/] added as {role.value}")


@user_app.command("list")
@handles_errors
def user_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Every console user."""
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        users = context.access.users()
    finally:
        context.close()
    if as_json:
        print_json(users)
        return
    table = Table(title="users", title_justify="left")
    for column in ("name", "role", "created_at", "disabled"):
        table.add_column(column)
    for u in users:
        table.add_row(u["name"], u["role"], u["created_at"], str(u["disabled"]))
    out.print(table)


@apikey_app.command("create")
@handles_errors
def apikey_create(
    name: Annotated[str, typer.Argument(help="A name for the key (e.g. web-tracking).")],
    scopes: Annotated[str, typer.Option(help="Comma-separated: collect, read, write, admin.")],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Make an API key; it is printed once and cannot be shown again."""
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        key = context.access.create_api_key(name, scopes.split(","), created_by=getpass.getuser())
    finally:
        context.close()
    if as_json:
        print_json({"name": name, "scopes": sorted(scopes.split(",")), "key": key})
    else:
        out.print(f"API key [bold]{name}[/] ({scopes}); store it now, it is not shown again:")
        sys.stdout.write(key + "\n")


@apikey_app.command("list")
@handles_errors
def apikey_list(project: ProjectOption = Path("."), as_json: JsonOption = False) -> None:
    """Every API key (names, prefixes and scopes; never the keys)."""
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        keys = context.access.api_keys()
    finally:
        context.close()
    if as_json:
        sys.stdout.write(json.dumps(keys, indent=2) + "\n")
        return
    table = Table(title="API keys", title_justify="left")
    for column in ("name", "prefix", "scopes", "created_by", "created_at", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k["name"],
            k["prefix"],
            ",".join(k["scopes"]),
            k["created_by"],
            k["created_at"],
            str(k["revoked"]),
        )
    out.print(table)


@apikey_app.command("revoke")
@handles_errors
def apikey_revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    project: ProjectOption = Path("."),
    as_json: JsonOption = False,
) -> None:
    """Revoke a key (running servers stop accepting it within 30 seconds)."""
    context = build_context(ApiSettings(project=project.resolve(), load_interval_seconds=0))
    try:
        context.access.revoke_api_key(name)
    finally:
        context.close()
    if as_json:
        print_json({"revoked": name})
    else:
        out.print(f"API key [bold]{name}[/] revoked")


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``collect``, ``user`` and ``apikey`` to the ``jingzhun`` command."""
    app.command("serve")(serve)
    app.add_typer(collect_app, name="collect")
    app.add_typer(user_app, name="user")
    app.add_typer(apikey_app, name="apikey")
