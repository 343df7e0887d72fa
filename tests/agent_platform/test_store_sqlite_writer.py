"""The SQLite store's writer thread: each write one transaction, undone when it cannot finish."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from agent_platform.store.base import StoreError
from agent_platform.store.sqlite import WriterThread

WAIT_SECONDS = 10.0


def create_notes(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE notes (text TEXT NOT NULL)")


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[WriterThread]:
    writer = WriterThread(tmp_path / "platform.db")
    await writer.open(create_notes)
    yield writer
    await writer.close()


async def notes(writer: WriterThread) -> list[str]:
    rows = await writer.transaction(lambda db: db.execute("SELECT text FROM notes").fetchall())
    return [row["text"] for row in rows]


def add(text: str) -> Callable[[sqlite3.Connection], object]:
    return lambda db: db.execute("INSERT INTO notes VALUES (?)", (text,))


async def test_a_write_whose_caller_is_cancelled_while_it_runs_is_rolled_back(
    writer: WriterThread,
) -> None:
    running, go_on = threading.Event(), threading.Event()

    def slow_write(db: sqlite3.Connection) -> None:
        add("from a caller that left")(db)
        running.set()
        go_on.wait(WAIT_SECONDS)

    write = asyncio.create_task(writer.transaction(slow_write))
    assert await asyncio.to_thread(running.wait, WAIT_SECONDS)
    write.cancel()
    with pytest.raises(asyncio.CancelledError):
        await write
    go_on.set()

    await writer.transaction(add("next"))
    assert await notes(writer) == ["next"]


async def test_a_transaction_that_cannot_commit_is_rolled_back_and_the_next_one_commits(
    tmp_path: Path,
) -> None:
    def with_deferred_checks(db: sqlite3.Connection) -> None:
        create_notes(db)
        db.execute("PRAGMA foreign_keys = ON")
        db.execute("CREATE TABLE authors (name TEXT PRIMARY KEY)")
        db.execute(
            "CREATE TABLE signed (note TEXT, author TEXT"
            " REFERENCES authors (name) DEFERRABLE INITIALLY DEFERRED)"
        )

    def unsigned(db: sqlite3.Connection) -> None:
        # Checked only at COMMIT, which then fails and leaves the transaction open.
        db.execute("INSERT INTO signed VALUES ('a note', 'nobody')")

    writer = WriterThread(tmp_path / "platform.db")
    await writer.open(with_deferred_checks)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            await writer.transaction(unsigned)
        await writer.transaction(add("next"))
        assert await notes(writer) == ["next"]
    finally:
        await writer.close()


async def test_a_write_after_close_is_refused_with_a_store_error(tmp_path: Path) -> None:
    writer = WriterThread(tmp_path / "platform.db")
    await writer.open(lambda db: None)
    await writer.close()
    with pytest.raises(StoreError, match="not open"):
        await writer.transaction(lambda db: db.execute("SELECT 1"))
