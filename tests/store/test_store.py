"""The operational store on real SQLite files, and on PostgreSQL when a test server is named."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, make_url, text

import jingzhun.store
from jingzhun.core import EngineError, NotFoundError, StoreSettings
from jingzhun.store import OperationalStore, RunRecord, RunStatus
from jingzhun.store._models import Base, Run

POSTGRES_URL = os.environ.get("JINGZHUN_TEST_POSTGRES_URL")
STORE_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(
                not POSTGRES_URL,
                reason="set JINGZHUN_TEST_POSTGRES_URL=postgresql+psycopg://user@host/db to run",
            ),
        ],
    ),
]


def _postgres_schema_url(schema: str) -> str:
    """The test server's URL with ``schema`` first on the search path, so tests stay apart."""
    assert POSTGRES_URL is not None
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture(params=STORE_PARAMS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty store: a SQLite file under tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield StoreSettings().operational  # the project default, relative to tmp_path
        return
    pytest.importorskip("psycopg", reason="the PostgreSQL tests need psycopg installed")
    assert POSTGRES_URL is not None
    schema = f"jz_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _postgres_schema_url(schema)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def fresh_store(store_url: str, tmp_path: Path) -> Iterator[OperationalStore]:
    """An opened store that has not been migrated."""
    with OperationalStore.open(store_url, tmp_path) as store:
        yield store


@pytest.fixture
def store(fresh_store: OperationalStore) -> OperationalStore:
    """An opened store migrated to the newest revision."""
    fresh_store.migrate()
    return fresh_store


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[OperationalStore]:
    """A migrated store in the default SQLite file, for what only SQLite does (WAL, locks)."""
    with OperationalStore.open(StoreSettings().operational, tmp_path) as store:
        store.migrate()
        yield store


# -- opening -----------------------------------------------------------------------------------


def test_relative_sqlite_path_is_placed_in_the_project_folder(tmp_path: Path) -> None:
    with OperationalStore.open("sqlite:///state/operational.db", tmp_path) as store:
        assert (tmp_path / "state").is_dir()
        assert store.url.database == str(tmp_path / "state" / "operational.db")
        store.migrate()
    assert (tmp_path / "state" / "operational.db").is_file()


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "ops.db"
    with OperationalStore.open(f"sqlite:///{target}", tmp_path / "project") as store:
        assert store.url.database == str(target)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "is not a SQLAlchemy URL"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("mysql://user@localhost/db", "runs on SQLite or PostgreSQL"),
    ],
)
def test_unusable_url_is_refused_with_an_example(url: str, expected: str, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=expected):
        OperationalStore.open(url, tmp_path)


def test_postgresql_url_is_accepted_without_connecting(tmp_path: Path) -> None:
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver) is not installed")
    # Port 9 (discard) has no PostgreSQL behind it: any connection attempt would fail.
    url = "postgresql+psycopg://jingzhun:secret@127.0.0.1:9/nowhere"
    with OperationalStore.open(url, tmp_path) as store:
        assert store.engine.dialect.name == "postgresql"
        assert store.engine.pool.checkedout() == 0
        assert "secret" not in repr(store)
        assert store.head_revision()  # known from the packaged scripts, no database needed
    assert list(tmp_path.iterdir()) == []


def test_missing_database_driver_is_named_with_the_fix(tmp_path: Path) -> None:
    try:
        import pg8000  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - depends on the machine
        pytest.skip("pg8000 is installed here, so its absence cannot be shown")
    with pytest.raises(EngineError, match=r"driver .* is not installed.*pip install"):
        OperationalStore.open("postgresql+pg8000://user@127.0.0.1:9/db", tmp_path)


# -- migrations --------------------------------------------------------------------------------


def test_migrate_brings_a_new_database_to_head(fresh_store: OperationalStore) -> None:
    assert fresh_store.current_revision() is None
    fresh_store.migrate()
    assert fresh_store.current_revision() == fresh_store.head_revision()
    fresh_store.check_revision()


def test_migrating_twice_changes_nothing(store: OperationalStore) -> None:
    run_id = store.start_run("ingest", "shop")
    store.migrate()
    assert store.current_revision() == store.head_revision()
    assert [run.run_id for run in store.recent_runs()] == [run_id]


def test_orm_models_and_migrated_schema_agree(store: OperationalStore) -> None:
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_two_processes_migrating_at_once_both_succeed(fresh_store: OperationalStore) -> None:
    # Each migrate() uses its own connection, as a second process would: the write lock (SQLite)
    # or advisory lock (PostgreSQL) makes the second wait, then find nothing left to do.
    failures: list[BaseException] = []

    def migrate() -> None:
        try:
            fresh_store.migrate()
        except BaseException as exc:  # pragma: no cover - reported below
            failures.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert failures == []
    assert fresh_store.current_revision() == fresh_store.head_revision()


def test_database_from_a_newer_jingzhun_is_refused(store: OperationalStore, tmp_path: Path) -> None:
    with store.engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES ('f00dfeed0042')"))
    with OperationalStore.open(store.url.render_as_string(hide_password=False), tmp_path) as newer:
        with pytest.raises(EngineError, match=r"'f00dfeed0042'.*newer jingzhun") as caught:
            newer.migrate()
        assert "Upgrade jingzhun" in str(caught.value)
        with pytest.raises(EngineError, match="newer jingzhun"):
            newer.check_revision()
    assert store.current_revision() == "f00dfeed0042"  # refused, not touched


def test_unmigrated_store_fails_the_revision_check(fresh_store: OperationalStore) -> None:
    with pytest.raises(EngineError, match="run migrate"):
        fresh_store.check_revision()


# -- runs --------------------------------------------------------------------------------------


def test_run_lifecycle_round_trips(store: OperationalStore) -> None:
    before = datetime.now(UTC)
    run_id = store.start_run("ingest", "shop")
    assert len(run_id) == 32 and int(run_id, 16) >= 0

    (running,) = store.recent_runs()
    assert running == RunRecord(
        run_id=run_id,
        command="ingest",
        project="shop",
        status=RunStatus.RUNNING,
        started_at=running.started_at,
        finished_at=None,
        summary={},
        error=None,
    )
    assert running.started_at.tzinfo is UTC
    assert before <= running.started_at <= datetime.now(UTC)

    summary = {"rows": 541_909, "quarantined": 0, "as_of": date(2011, 12, 9), "名": "精准"}
    store.finish_run(run_id, "ok", summary)
    (finished,) = store.recent_runs()
    assert finished.status is RunStatus.OK
    assert finished.summary == {**summary, "as_of": "2011-12-09"}  # dates are stored as ISO text
    assert finished.finished_at is not None and finished.finished_at.tzinfo is UTC
    assert running.started_at <= finished.finished_at <= datetime.now(UTC)
    assert finished.error is None


def test_failed_run_keeps_its_error(store: OperationalStore) -> None:
    run_id = store.start_run("build", "shop")
    store.finish_run(run_id, RunStatus.FAILED, {"stage": "profiles"}, error="disk full")
    (run,) = store.recent_runs()
    assert (run.status, run.error, run.summary) == (
        RunStatus.FAILED,
        "disk full",
        {"stage": "profiles"},
    )


def test_recent_runs_are_newest_first_and_limited(store: OperationalStore) -> None:
    run_ids = [store.start_run(f"step{n}", "shop") for n in range(5)]
    assert [run.run_id for run in store.recent_runs(limit=3)] == run_ids[::-1][:3]
    with pytest.raises(ValueError, match="at least 1"):
        store.recent_runs(limit=0)


def test_finishing_a_run_twice_or_an_unknown_run_is_an_error(store: OperationalStore) -> None:
    run_id = store.start_run("ingest", "shop")
    store.finish_run(run_id, "ok", {})
    with pytest.raises(EngineError, match="already finished with status 'ok'"):
        store.finish_run(run_id, "failed", {})
    with pytest.raises(NotFoundError, match="no run with id 'nope'"):
        store.finish_run("nope", "ok", {})


@pytest.mark.parametrize("status", ["running", "done"])
def test_finish_run_needs_a_final_status(sqlite_store: OperationalStore, status: str) -> None:
    run_id = sqlite_store.start_run("ingest", "shop")
    with pytest.raises(ValueError, match="'ok' or 'failed'"):
        sqlite_store.finish_run(run_id, status, {})


def test_summary_that_is_not_json_is_refused_before_writing(sqlite_store: OperationalStore) -> None:
    run_id = sqlite_store.start_run("ingest", "shop")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        sqlite_store.finish_run(run_id, "ok", {"handle": object()})
    assert sqlite_store.recent_runs()[0].status is RunStatus.RUNNING


# -- sessions ----------------------------------------------------------------------------------


def _run_row(run_id: str) -> Run:
    return Run(
        run_id=run_id,
        command="test",
        project="shop",
        started_at=datetime.now(UTC),
        status=RunStatus.RUNNING.value,
    )


def test_session_rolls_back_when_the_block_raises(store: OperationalStore) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.session() as session:
        session.add(_run_row("a" * 32))
        session.flush()
        raise RuntimeError("boom")
    assert store.recent_runs() == []


def test_database_error_becomes_an_engine_error_naming_the_store(store: OperationalStore) -> None:
    run_id = store.start_run("ingest", "shop")
    with (
        pytest.raises(EngineError, match=r"operational store .* failed") as caught,
        store.session() as session,
    ):
        session.add(_run_row(run_id))  # the run id is unique
    assert str(caught.value).startswith(f"the operational store {store.where} failed")
    assert len(store.recent_runs()) == 1


def test_naive_timestamp_is_refused(sqlite_store: OperationalStore) -> None:
    row = _run_row("b" * 32)
    row.started_at = datetime(2024, 1, 1, 12, 0)
    with pytest.raises(EngineError, match="has no time zone"), sqlite_store.session() as session:
        session.add(row)


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = OperationalStore.open(StoreSettings().operational, tmp_path)
    store.close()
    store.close()  # closing twice is harmless
    with pytest.raises(EngineError, match="is closed"):
        store.recent_runs()


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = Path(jingzhun.store.__file__).with_name("README.md").read_text(encoding="utf-8")
    example = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {})
    assert (tmp_path / "my_project" / "state" / "operational.db").is_file()


# -- SQLite: WAL, readers beside a writer ------------------------------------------------------


def test_sqlite_runs_in_wal_mode_with_busy_timeout_and_foreign_keys(
    sqlite_store: OperationalStore,
) -> None:
    with sqlite_store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


_READER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from jingzhun.store import OperationalStore

    started = time.monotonic()
    with OperationalStore.open(sys.argv[1], Path(sys.argv[2])) as store:
        runs = store.recent_runs()
    print(len(runs), runs[0].run_id if runs else "-", f"{time.monotonic() - started:.3f}")
    """
)


def test_reader_in_another_process_reads_while_a_writer_holds_the_lock(
    sqlite_store: OperationalStore, tmp_path: Path
) -> None:
    committed = sqlite_store.start_run("ingest", "shop")
    with sqlite_store.session(write=True) as session:
        session.add(_run_row("c" * 32))
        session.flush()  # the write lock is held until this block ends
        reader = subprocess.run(
            [sys.executable, "-c", _READER, StoreSettings().operational, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert reader.returncode == 0, reader.stderr
    count, newest, seconds = reader.stdout.split()
    # The reader saw the committed run, not the open transaction's, and did not wait for it.
    assert (count, newest) == ("1", committed)
    assert float(seconds) < 5
    assert len(sqlite_store.recent_runs()) == 2


def test_second_writer_waits_for_the_first_instead_of_failing(
    sqlite_store: OperationalStore,
) -> None:
    holding = threading.Event()

    def hold_write_lock() -> None:
        with sqlite_store.session(write=True) as session:
            session.add(_run_row("d" * 32))
            session.flush()
            holding.set()
            time.sleep(0.5)

    writer = threading.Thread(target=hold_write_lock)
    writer.start()
    assert holding.wait(timeout=10)
    started = time.monotonic()
    sqlite_store.start_run("build", "shop")  # blocks on the lock, then succeeds
    waited = time.monotonic() - started
    writer.join(timeout=10)
    assert waited > 0.2
    assert len(sqlite_store.recent_runs()) == 2


def test_store_works_as_a_reader_while_another_store_writes(tmp_path: Path) -> None:
    # Two stores on one file, as the API server and a build would have.
    url = StoreSettings().operational
    with (
        OperationalStore.open(url, tmp_path) as writer,
        OperationalStore.open(url, tmp_path) as api,
    ):
        writer.migrate()
        with writer.session(write=True) as session:
            session.add(_run_row("e" * 32))
            session.flush()
            assert api.recent_runs() == []
            assert api.current_revision() == api.head_revision()
        assert [run.run_id for run in api.recent_runs()] == ["e" * 32]
