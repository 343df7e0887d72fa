"""The embedded store: one SQLite file in WAL mode.

Writes go through one connection on a thread of its own, one transaction at a time, each
transaction one function run there (`WriterThread`); reads use a second connection, so they never
see a write that is not committed yet and never wait behind one.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Final, TypeVar

import aiosqlite
from agent_runner.protocol import Limits, Outcome, Usage
from pydantic_core import to_json

from agent_platform import token_holds
from agent_platform.domain import (
    Agent,
    ApiToken,
    Lease,
    Message,
    Reservation,
    Run,
    RunStatus,
    RunTransition,
    StoredEvent,
    TokenHold,
    TokenKind,
    User,
    finishing,
    result_event,
)
from agent_platform.store.base import StoreError

T = TypeVar("T")

# Rows in one INSERT stay far below SQLite's 32,766 bound variables (5 per event).
EVENTS_PER_WRITE: Final = 5000

# Columns added after the first release, for files created before them.
ADDED_COLUMNS = {
    "runs": ("lease_holder TEXT", "lease_until TEXT", "token_holds TEXT NOT NULL DEFAULT '{}'")
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    is_admin INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user_id);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    system_prompt TEXT NOT NULL,
    model TEXT NOT NULL,
    allowed_tools TEXT NOT NULL,
    limits TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agents_by_owner ON agents (owner_id, created_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    owner_id TEXT NOT NULL,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error TEXT,
    usage TEXT NOT NULL,
    idempotency_key TEXT,
    run_token_hash TEXT UNIQUE,
    lease_holder TEXT,
    lease_until TEXT,
    -- Tokens of the budget set aside for the run's gateway calls in flight, by call
    -- (agent_platform.token_holds).
    token_holds TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs (owner_id, created_at);
CREATE INDEX IF NOT EXISTS runs_by_agent ON runs (agent_id, created_at);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_lease ON runs (status, lease_until);
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_idempotency_key
    ON runs (owner_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    time TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversation (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
"""


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _instant(value: datetime) -> str:
    """A time as text that sorts like the time: UTC, always with microseconds."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        created_at=datetime.fromisoformat(row["created_at"]),
        is_admin=bool(row["is_admin"]),
    )


def _token(row: sqlite3.Row) -> ApiToken:
    return ApiToken(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        kind=TokenKind(row["kind"]),
        token_hash=row["token_hash"],
        created_at=datetime.fromisoformat(row["created_at"]),
        expires_at=_time(row["expires_at"]),
    )


def _agent(row: sqlite3.Row) -> Agent:
    return Agent(
        id=row["id"],
        owner_id=row["owner_id"],
        name=row["name"],
        description=row["description"],
        system_prompt=row["system_prompt"],
        model=row["model"],
        allowed_tools=tuple(json.loads(row["allowed_tools"])),
        limits=Limits.model_validate_json(row["limits"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        agent_id=row["agent_id"],
        owner_id=row["owner_id"],
        task=row["task"],
        status=RunStatus(row["status"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        started_at=_time(row["started_at"]),
        finished_at=_time(row["finished_at"]),
        error=row["error"],
        usage=Usage.model_validate_json(row["usage"]),
        idempotency_key=row["idempotency_key"],
        lease=None
        if row["lease_holder"] is None
        else Lease(row["lease_holder"], datetime.fromisoformat(row["lease_until"])),
    )


def _event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        run_id=row["run_id"],
        seq=row["seq"],
        type=row["type"],
        data=json.loads(row["data"]),
        time=datetime.fromisoformat(row["time"]),
    )


def _write_off(usage: Usage, holds: dict[str, Any], *, holder: str | None, now: datetime) -> Usage:
    """`usage` with the stale holds counted as output, which they are removed from `holds`."""
    lost = token_holds.stale(holds, holder=holder, now=now)
    if not lost:
        return usage
    written_off = token_holds.tokens(holds, lost)
    for hold_id in lost:
        del holds[hold_id]
    return usage + Usage(output_tokens=written_off)


def _status_list(statuses: Collection[RunStatus]) -> str:
    return json.dumps([s.value for s in statuses])


def _first(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
    """The first row, the statement finished: none is left open when the transaction ends."""
    rows: list[sqlite3.Row] = db.execute(sql, params).fetchall()
    return rows[0] if rows else None


def _changed(db: sqlite3.Connection, sql: str, params: Sequence[Any]) -> int:
    """Run one statement; the number of rows it changed."""
    cursor = db.execute(sql, params)
    count = cursor.rowcount
    cursor.close()
    return count


def _connect(path: Path) -> sqlite3.Connection:
    """A connection to the store's file, the writer's or the reader's; called on its thread."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA busy_timeout=5000")
    # WAL makes NORMAL durable against application crashes, which is what matters here.
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def _in_transaction(
    db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], abandoned: threading.Event
) -> T:
    """`work` as one transaction; rolled back if it fails, or if its caller stopped waiting."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        if abandoned.is_set():
            raise asyncio.CancelledError
        db.execute("COMMIT")
    except BaseException:
        # Some errors end the transaction themselves; one left open would fail every BEGIN.
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result


class WriterThread:
    """The one connection that writes, and the one thread it is used on.

    Each write is a function of the connection, run there in one trip as a transaction of its
    own, in the order writes are handed over. A transaction of several statements, each awaited
    from the event loop, held the database for a turn of the loop per statement: on a busy
    platform, tens of milliseconds that every other write waited behind. A write whose caller
    is cancelled is rolled back, unless it is committing already.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self._connection: sqlite3.Connection | None = None

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, function)

    async def open(self, setup: Callable[[sqlite3.Connection], None]) -> None:
        """Connect, and run `setup` first, outside any transaction (it may change the journal)."""

        def connect() -> sqlite3.Connection:
            connection = _connect(self._path)
            try:
                setup(connection)
            except BaseException:
                connection.close()
                raise
            return connection

        try:
            self._connection = await self._call(connect)
        except BaseException:
            self._thread.shutdown(wait=False)
            raise

    async def transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        connection = self._connection
        if connection is None:
            raise StoreError("the SQLite store is not open")
        abandoned = threading.Event()
        try:
            return await self._call(lambda: _in_transaction(connection, work, abandoned))
        except asyncio.CancelledError:
            # A write not started yet does not run; one under way is undone before its COMMIT.
            abandoned.set()
            raise

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await self._call(connection.close)
        self._thread.shutdown()


@dataclass(frozen=True, slots=True)
class _Append:
    """A batch of one run's events waiting for the next write, and who waits for its result."""

    run_id: str
    events: Sequence[StoredEvent]
    # The batch's column values, encoded before it waits: data that cannot be encoded fails
    # its own batch, never the write it would have shared with other runs' batches.
    values: list[Any]
    stored: asyncio.Future[list[StoredEvent]]


def _next_write(waiting: Sequence[_Append]) -> Sequence[_Append]:
    """The first batches waiting, as many as one statement holds, and at least one."""
    count = 0
    for taken, append in enumerate(waiting):
        count += len(append.events)
        if count > EVENTS_PER_WRITE and taken > 0:
            return waiting[:taken]
    return list(waiting)


def _data_json(data: dict[str, Any]) -> str:
    """An event's data as JSON text; NaN and infinities, which JSON cannot spell, as null."""
    return to_json(data, inf_nan_mode="null").decode()


def _values(run_id: str, events: Sequence[StoredEvent]) -> list[Any]:
    """The events' column values, row after row, in `_insert_events`' order."""
    return [
        value for e in events for value in (run_id, e.seq, e.type, _data_json(e.data), _iso(e.time))
    ]


def _insert_events(db: sqlite3.Connection, appends: Sequence[_Append]) -> list[sqlite3.Row]:
    """One statement storing every batch; a (run, seq) already stored keeps its first event.

    Returns the (run_id, seq) of each event it stored.
    """
    rows = ", ".join(["(?, ?, ?, ?, ?)"] * sum(len(a.events) for a in appends))
    params = [value for a in appends for value in a.values]
    sql = (
        f"INSERT INTO events (run_id, seq, type, data, time) VALUES {rows}"  # noqa: S608 - placeholders only
        " ON CONFLICT DO NOTHING RETURNING run_id, seq"
    )
    stored: list[sqlite3.Row] = db.execute(sql, params).fetchall()
    return stored


def _settle(appends: Sequence[_Append], inserted: set[tuple[str, int]]) -> None:
    """Give each batch the events it stored: of two copies of an event, the first one's."""
    for append in appends:
        new: dict[int, StoredEvent] = {}
        for event in append.events:
            if (append.run_id, event.seq) in inserted:
                inserted.discard((append.run_id, event.seq))
                new[event.seq] = event
        if not append.stored.done():
            append.stored.set_result(sorted(new.values(), key=lambda e: e.seq))


class SqliteStore:
    """Open with `await SqliteStore.open(path)`."""

    def __init__(self, writer: WriterThread, reader: aiosqlite.Connection) -> None:
        self._writer = writer
        self._reader = reader
        self._appends: list[_Append] = []
        self._appender: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: Path) -> SqliteStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = WriterThread(path)
        await writer.open(cls._create_schema)
        try:
            reader = await aiosqlite.Connection(partial(_connect, path), iter_chunk_size=64)
        except BaseException:
            await writer.close()
            raise
        return cls(writer, reader)

    @staticmethod
    def _create_schema(db: sqlite3.Connection) -> None:
        db.execute("PRAGMA journal_mode=WAL")
        for table, columns in ADDED_COLUMNS.items():
            existing = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            if not existing:
                continue  # a new file: SCHEMA creates the table whole
            for column in columns:
                if column.split()[0] not in existing:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
        db.executescript(SCHEMA)

    async def _one(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        rows = await self._all(sql, params)
        return rows[0] if rows else None

    async def _all(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        # Run, fetched and closed in one call on the reader's thread: a statement left open
        # across calls would hold a read transaction, and with it an old snapshot, for every
        # read that overlaps it.
        return list(await self._reader.execute_fetchall(sql, params))

    async def ping(self) -> None:
        await self._one("SELECT 1", ())

    async def aclose(self) -> None:
        if self._appender is not None:
            await self._appender
        await self._reader.close()
        await self._writer.close()

    # Users and tokens.
    async def create_user(self, user: User) -> None:
        try:
            await self._writer.transaction(
                lambda db: _changed(
                    db,
                    "INSERT INTO users (id, name, created_at, is_admin) VALUES (?, ?, ?, ?)",
                    (user.id, user.name, _iso(user.created_at), int(user.is_admin)),
                )
            )
        except sqlite3.IntegrityError as error:
            raise StoreError(f"a user named {user.name!r} already exists") from error

    async def get_user(self, user_id: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE id = ?", (user_id,))
        return None if row is None else _user(row)

    async def find_user_by_name(self, name: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE name = ?", (name,))
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._all("SELECT * FROM users ORDER BY created_at", ())]

    async def create_token(self, token: ApiToken) -> None:
        await self._writer.transaction(
            lambda db: _changed(
                db,
                "INSERT INTO tokens (id, user_id, name, kind, token_hash, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.user_id,
                    token.name,
                    token.kind.value,
                    token.token_hash,
                    _iso(token.created_at),
                    _iso(token.expires_at),
                ),
            )
        )

    async def find_token(self, token_hash: str) -> ApiToken | None:
        row = await self._one("SELECT * FROM tokens WHERE token_hash = ?", (token_hash,))
        return None if row is None else _token(row)

    async def consume_token(self, token_hash: str, kind: TokenKind) -> ApiToken | None:
        row = await self._writer.transaction(
            lambda db: _first(
                db,
                "DELETE FROM tokens WHERE token_hash = ? AND kind = ? RETURNING *",
                (token_hash, kind.value),
            )
        )
        return None if row is None else _token(row)

    async def list_tokens(self, user_id: str) -> list[ApiToken]:
        rows = await self._all(
            "SELECT * FROM tokens WHERE user_id = ? ORDER BY created_at", (user_id,)
        )
        return [_token(r) for r in rows]

    async def delete_token(self, user_id: str, token_id: str) -> bool:
        deleted = await self._writer.transaction(
            lambda db: _changed(
                db, "DELETE FROM tokens WHERE user_id = ? AND id = ?", (user_id, token_id)
            )
        )
        return deleted > 0

    # Agents.
    async def create_agent(self, agent: Agent) -> None:
        await self._writer.transaction(
            lambda db: _changed(
                db,
                "INSERT INTO agents (id, owner_id, name, description, system_prompt, model,"
                " allowed_tools, limits, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.id,
                    agent.owner_id,
                    agent.name,
                    agent.description,
                    agent.system_prompt,
                    agent.model,
                    json.dumps(list(agent.allowed_tools)),
                    agent.limits.model_dump_json(),
                    _iso(agent.created_at),
                    _iso(agent.updated_at),
                ),
            )
        )

    async def get_agent(self, owner_id: str, agent_id: str) -> Agent | None:
        row = await self._one(
            "SELECT * FROM agents WHERE owner_id = ? AND id = ?", (owner_id, agent_id)
        )
        return None if row is None else _agent(row)

    async def list_agents(self, owner_id: str, *, limit: int = 100) -> list[Agent]:
        rows = await self._all(
            "SELECT * FROM agents WHERE owner_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (owner_id, limit),
        )
        return [_agent(r) for r in rows]

    async def update_agent(self, agent: Agent) -> bool:
        updated = await self._writer.transaction(
            lambda db: _changed(
                db,
                "UPDATE agents SET name = ?, description = ?, system_prompt = ?, model = ?,"
                " allowed_tools = ?, limits = ?, updated_at = ? WHERE owner_id = ? AND id = ?",
                (
                    agent.name,
                    agent.description,
                    agent.system_prompt,
                    agent.model,
                    json.dumps(list(agent.allowed_tools)),
                    agent.limits.model_dump_json(),
                    _iso(agent.updated_at),
                    agent.owner_id,
                    agent.id,
                ),
            )
        )
        return updated > 0

    async def delete_agent(self, owner_id: str, agent_id: str) -> bool:
        def delete(db: sqlite3.Connection) -> bool:
            deleted = _changed(
                db, "DELETE FROM agents WHERE owner_id = ? AND id = ?", (owner_id, agent_id)
            )
            if deleted == 0:
                return False
            db.execute(
                "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE agent_id = ?)",
                (agent_id,),
            )
            db.execute("DELETE FROM runs WHERE agent_id = ?", (agent_id,))
            db.execute("DELETE FROM conversation WHERE agent_id = ?", (agent_id,))
            return True

        return await self._writer.transaction(delete)

    # Runs.
    async def create_run(self, run: Run) -> tuple[Run, bool]:
        try:
            await self._writer.transaction(
                lambda db: _changed(
                    db,
                    "INSERT INTO runs (id, agent_id, owner_id, task, status, created_at,"
                    " started_at, finished_at, error, usage, idempotency_key)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.id,
                        run.agent_id,
                        run.owner_id,
                        run.task,
                        run.status.value,
                        _iso(run.created_at),
                        _iso(run.started_at),
                        _iso(run.finished_at),
                        run.error,
                        run.usage.model_dump_json(),
                        run.idempotency_key,
                    ),
                )
            )
        except sqlite3.IntegrityError:
            if run.idempotency_key is None:
                raise
            row = await self._one(
                "SELECT * FROM runs WHERE owner_id = ? AND idempotency_key = ?",
                (run.owner_id, run.idempotency_key),
            )
            if row is None:
                raise
            return _run(row), False
        return run, True

    async def get_run(self, owner_id: str, run_id: str) -> Run | None:
        row = await self._one(
            "SELECT * FROM runs WHERE owner_id = ? AND id = ?", (owner_id, run_id)
        )
        return None if row is None else _run(row)

    async def get_run_unscoped(self, run_id: str) -> Run | None:
        row = await self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return None if row is None else _run(row)

    async def list_runs(
        self,
        owner_id: str,
        *,
        agent_id: str | None = None,
        statuses: Collection[RunStatus] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        sql = "SELECT * FROM runs WHERE owner_id = ?"
        params: list[Any] = [owner_id]
        if agent_id is not None:
            sql += " AND agent_id = ?"
            params.append(agent_id)
        if statuses is not None:
            sql += " AND status IN (SELECT value FROM json_each(?))"
            params.append(_status_list(statuses))
        sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_run(r) for r in await self._all(sql, params)]

    async def list_runs_in(
        self, statuses: Collection[RunStatus], *, limit: int = 1000
    ) -> list[Run]:
        rows = await self._all(
            "SELECT * FROM runs WHERE status IN (SELECT value FROM json_each(?))"
            " ORDER BY created_at, id LIMIT ?",
            (_status_list(statuses), limit),
        )
        return [_run(r) for r in rows]

    async def count_runs_in(self, statuses: Collection[RunStatus]) -> int:
        row = await self._one(
            "SELECT count(*) FROM runs WHERE status IN (SELECT value FROM json_each(?))",
            (_status_list(statuses),),
        )
        return 0 if row is None else int(row[0])

    async def transition_run(self, change: RunTransition) -> Run | None:
        return await self._writer.transaction(partial(self._transition, change=change))

    async def finish_run(
        self, change: RunTransition, outcome: Outcome
    ) -> tuple[Run, StoredEvent] | None:
        def finish(db: sqlite3.Connection) -> tuple[Run, StoredEvent] | None:
            sql = "SELECT * FROM events WHERE run_id = ? ORDER BY seq DESC LIMIT 1"
            row = _first(db, sql, (change.run_id,))
            last = None if row is None else _event(row)
            applied, reported = finishing(change, last)
            run = self._transition(db, change=applied)
            if run is None:
                return None
            if reported is not None:
                return run, reported
            event = result_event(run, outcome, 1 if last is None else last.seq + 1, change.at)
            db.execute(
                "INSERT INTO events (run_id, seq, type, data, time) VALUES (?, ?, ?, ?, ?)",
                _values(run.id, [event]),
            )
            return run, event

        return await self._writer.transaction(finish)

    def _transition(self, db: sqlite3.Connection, *, change: RunTransition) -> Run | None:
        row = _first(db, "SELECT * FROM runs WHERE id = ?", (change.run_id,))
        run = None if row is None else change.applied_to(_run(row))
        if run is None:
            return None
        db.execute(
            "UPDATE runs SET status = ?, started_at = ?, finished_at = ?, error = ?,"
            " usage = ?, run_token_hash = coalesce(?, run_token_hash), lease_holder = ?,"
            " lease_until = ? WHERE id = ?",
            (
                run.status.value,
                _iso(run.started_at),
                _iso(run.finished_at),
                run.error,
                run.usage.model_dump_json(),
                change.run_token_hash,
                None if run.lease is None else run.lease.holder,
                None if run.lease is None else _instant(run.lease.until),
                run.id,
            ),
        )
        if change.new_messages:
            self._append_messages(db, run.agent_id, change.new_messages)
        return run

    async def find_run_by_token(self, token_hash: str) -> Run | None:
        row = await self._one("SELECT * FROM runs WHERE run_token_hash = ?", (token_hash,))
        return None if row is None else _run(row)

    async def renew_leases(self, holder: str, until: datetime) -> list[str]:
        rows = await self._writer.transaction(
            lambda db: db.execute(
                "UPDATE runs SET lease_until = ? WHERE lease_holder = ? AND status = ?"
                " RETURNING id",
                (_instant(until), holder, RunStatus.RUNNING.value),
            ).fetchall()
        )
        return sorted(row["id"] for row in rows)

    async def list_expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        rows = await self._all(
            "SELECT * FROM runs WHERE status = ? AND lease_until <= ? ORDER BY lease_until LIMIT ?",
            (RunStatus.RUNNING.value, _instant(now), limit),
        )
        return [_run(r) for r in rows]

    async def reserve_tokens(
        self, run_id: str, hold: TokenHold, *, budget: int, least: int, most: int, now: datetime
    ) -> Reservation | None:
        def reserve(db: sqlite3.Connection) -> Reservation | None:
            row = _first(db, "SELECT usage, token_holds FROM runs WHERE id = ?", (run_id,))
            if row is None:
                return None
            usage = Usage.model_validate_json(row["usage"])
            holds = dict(json.loads(row["token_holds"]))
            usage = _write_off(usage, holds, holder=None, now=now)
            used, held = usage.total_tokens, token_holds.tokens(holds)
            granted = min(most, budget - used - held)
            if granted >= least:
                holds[hold.id] = token_holds.entry(hold, granted)
            db.execute(
                "UPDATE runs SET usage = ?, token_holds = ? WHERE id = ?",
                (usage.model_dump_json(), json.dumps(holds), run_id),
            )
            return Reservation(granted if granted >= least else 0, used, held)

        return await self._writer.transaction(reserve)

    async def settle_tokens(self, run_id: str, hold_id: str | None, usage: Usage) -> Run | None:
        def settle(db: sqlite3.Connection) -> Run | None:
            row = _first(db, "SELECT * FROM runs WHERE id = ?", (run_id,))
            if row is None:
                return None
            run = _run(row)
            holds = dict(json.loads(row["token_holds"]))
            if hold_id is not None and holds.pop(hold_id, None) is None:
                # Written off: its tokens were counted as used already.
                return run
            total = run.usage + usage
            db.execute(
                "UPDATE runs SET usage = ?, token_holds = ? WHERE id = ?",
                (total.model_dump_json(), json.dumps(holds), run_id),
            )
            return replace(run, usage=total)

        return await self._writer.transaction(settle)

    async def write_off_holds(self, run_id: str, *, holder: str | None, now: datetime) -> None:
        def write_off(db: sqlite3.Connection) -> None:
            row = _first(db, "SELECT usage, token_holds FROM runs WHERE id = ?", (run_id,))
            if row is None:
                return
            holds = dict(json.loads(row["token_holds"]))
            usage = _write_off(
                Usage.model_validate_json(row["usage"]), holds, holder=holder, now=now
            )
            db.execute(
                "UPDATE runs SET usage = ?, token_holds = ? WHERE id = ?",
                (usage.model_dump_json(), json.dumps(holds), run_id),
            )

        await self._writer.transaction(write_off)

    # Events.
    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        if not events:
            return []
        values = _values(run_id, events)
        append = _Append(run_id, events, values, asyncio.get_running_loop().create_future())
        self._appends.append(append)
        if self._appender is None or self._appender.done():
            self._appender = asyncio.create_task(self._store_appends())
        # A caller that stops waiting cancels its own future only: the write goes ahead, and
        # settling it skips futures already done.
        return await append.stored

    async def _store_appends(self) -> None:
        """Store every batch waiting to be appended, together, until none is left.

        Batches from all runs that arrive while a write is under way go into the next write as
        one statement: one trip to the writer's thread and one commit for all of them, where a
        trip per batch could not keep up with a busy event flow.
        """
        while self._appends:
            appends = _next_write(self._appends)
            del self._appends[: len(appends)]
            try:
                inserted = await self._writer.transaction(partial(_insert_events, appends=appends))
            except BaseException as error:
                # Every caller of this write learns why it failed.
                for append in appends:
                    if not append.stored.done():
                        append.stored.set_exception(error)
                if not isinstance(error, Exception):
                    raise
                continue
            _settle(appends, {(row[0], row[1]) for row in inserted})

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        rows = await self._all(
            "SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (run_id, after, limit),
        )
        return [_event(r) for r in rows]

    async def last_event_seq(self, run_id: str) -> int:
        row = await self._one("SELECT max(seq) FROM events WHERE run_id = ?", (run_id,))
        return 0 if row is None or row[0] is None else int(row[0])

    # Conversation.
    async def get_conversation(self, owner_id: str, agent_id: str) -> list[Message]:
        rows = await self._all(
            "SELECT c.message FROM conversation c JOIN agents a ON a.id = c.agent_id"
            " WHERE a.owner_id = ? AND c.agent_id = ? ORDER BY c.seq",
            (owner_id, agent_id),
        )
        return [json.loads(r["message"]) for r in rows]

    async def append_conversation(
        self, owner_id: str, agent_id: str, messages: Sequence[Message]
    ) -> None:
        def append(db: sqlite3.Connection) -> None:
            agent = "SELECT 1 FROM agents WHERE owner_id = ? AND id = ?"
            if _first(db, agent, (owner_id, agent_id)) is None:
                raise StoreError(f"agent {agent_id} does not exist")
            self._append_messages(db, agent_id, messages)

        await self._writer.transaction(append)

    @staticmethod
    def _append_messages(
        db: sqlite3.Connection, agent_id: str, messages: Sequence[Message]
    ) -> None:
        last = "SELECT coalesce(max(seq), 0) FROM conversation WHERE agent_id = ?"
        row = _first(db, last, (agent_id,))
        start = 0 if row is None else int(row[0])
        db.executemany(
            "INSERT INTO conversation (agent_id, seq, message) VALUES (?, ?, ?)",
            [(agent_id, start + i, json.dumps(m)) for i, m in enumerate(messages, start=1)],
        )
