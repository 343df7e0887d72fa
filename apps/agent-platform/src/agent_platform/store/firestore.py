"""The cloud store: Firestore (native mode) through the async client.

The collection layout, the indexes and the TTL policy are described in docs/firestore.md.
Every query is built from a named `QuerySpec` in QUERIES, so that a test can check each one
against `firestore.indexes.json`. Changes that must not interleave across replicas (run state,
one-time tokens, conversations) run in transactions; Firestore retries a transaction that lost
a race, and the retry sees the winner's write.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agent_runner.protocol import Limits, Outcome, Usage
from google.api_core.exceptions import AlreadyExists, GoogleAPICallError, NotFound
from google.cloud.firestore import (
    DELETE_FIELD,
    AsyncClient,
    AsyncCollectionReference,
    AsyncDocumentReference,
    AsyncQuery,
    AsyncTransaction,
    DocumentSnapshot,
    FieldFilter,
    Increment,
    Query,
    async_transactional,
)

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
from agent_platform.store.firestore_queries import Direction, QuerySpec

Snapshot = DocumentSnapshot[Any]

# Events are kept this long after they happened; the TTL policy on `expire_at` deletes them.
EVENT_RETENTION: Final = timedelta(days=30)
# A batched write or a transaction holds at most 500 writes.
WRITES_PER_BATCH: Final = 500
# Replicas contend for the same run document (start, finish, lease takeover). The client's
# default of 5 attempts can run out while the losers are merely waiting their turn; a loser
# that finally reads the new status gives up on its own, so more attempts cost nothing.
TRANSACTION_ATTEMPTS: Final = 30
# The run document's map of tokens set aside for gateway calls in flight, by call
# (agent_platform.token_holds).
HOLDS: Final = "token_holds"

_ASC, _DESC = Direction.ASCENDING, Direction.DESCENDING
QUERIES: Final[Mapping[str, QuerySpec]] = {
    "users": QuerySpec("users", order=(("created_at", _ASC),)),
    "tokens_of_user": QuerySpec("tokens", equal=("user_id",), order=(("created_at", _ASC),)),
    "token_of_user": QuerySpec("tokens", equal=("user_id", "id")),
    "agents_of_owner": QuerySpec("agents", equal=("owner_id",), order=(("created_at", _DESC),)),
    "runs_of_owner": QuerySpec("runs", equal=("owner_id",), order=(("created_at", _DESC),)),
    "runs_of_agent": QuerySpec(
        "runs", equal=("owner_id", "agent_id"), order=(("created_at", _DESC),)
    ),
    "runs_of_owner_in": QuerySpec(
        "runs", equal=("owner_id", "status"), order=(("created_at", _DESC),)
    ),
    "runs_of_agent_in": QuerySpec(
        "runs", equal=("owner_id", "agent_id", "status"), order=(("created_at", _DESC),)
    ),
    "all_runs_of_agent": QuerySpec("runs", equal=("owner_id", "agent_id")),
    "runs_in": QuerySpec("runs", equal=("status",), order=(("created_at", _ASC),)),
    "count_runs_in": QuerySpec("runs", equal=("status",)),
    "run_by_token": QuerySpec("runs", equal=("run_token_hash",)),
    "leases_of_holder": QuerySpec("runs", equal=("lease_holder", "status")),
    "expired_leases": QuerySpec(
        "runs", equal=("status",), range="lease_until", order=(("lease_until", _ASC),)
    ),
    "events_after": QuerySpec("events", range="seq", order=(("seq", _ASC),)),
    "last_event": QuerySpec("events", order=(("seq", _DESC),)),
    "all_events": QuerySpec("events"),
    "conversation": QuerySpec("conversation", order=(("seq", _ASC),)),
}


def _key(*parts: str) -> str:
    """A document id for values that may hold characters a document id cannot."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _seq_id(seq: int) -> str:
    # Zero-padded, so that document ids sort like the numbers.
    return f"{seq:012d}"


def _time(value: Any) -> datetime:
    """A plain datetime from Firestore's timestamp type, which carries nanoseconds."""
    if not isinstance(value, datetime):
        raise StoreError(f"expected a timestamp in the store, found {value!r}")
    return datetime(
        value.year,
        value.month,
        value.day,
        value.hour,
        value.minute,
        value.second,
        value.microsecond,
        tzinfo=UTC,
    )


def _maybe_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _user(doc: Snapshot) -> User:
    d = _data(doc)
    return User(doc.id, d["name"], _time(d["created_at"]), bool(d["is_admin"]))


def _token(doc: Snapshot) -> ApiToken:
    d = _data(doc)
    return ApiToken(
        id=d["id"],
        user_id=d["user_id"],
        name=d["name"],
        kind=TokenKind(d["kind"]),
        token_hash=doc.id,
        created_at=_time(d["created_at"]),
        expires_at=_maybe_time(d.get("expires_at")),
    )


def _agent_fields(agent: Agent) -> dict[str, Any]:
    return {
        "owner_id": agent.owner_id,
        "name": agent.name,
        "description": agent.description,
        "system_prompt": agent.system_prompt,
        "model": agent.model,
        "allowed_tools": list(agent.allowed_tools),
        "limits": agent.limits.model_dump(mode="json"),
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    }


def _agent(doc: Snapshot) -> Agent:
    d = _data(doc)
    return Agent(
        id=doc.id,
        owner_id=d["owner_id"],
        name=d["name"],
        description=d["description"],
        system_prompt=d["system_prompt"],
        model=d["model"],
        allowed_tools=tuple(d["allowed_tools"]),
        limits=Limits.model_validate(d["limits"]),
        created_at=_time(d["created_at"]),
        updated_at=_time(d["updated_at"]),
    )


def _run_fields(run: Run) -> dict[str, Any]:
    return {
        "agent_id": run.agent_id,
        "owner_id": run.owner_id,
        "task": run.task,
        "status": run.status.value,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "usage": run.usage.model_dump(mode="json"),
        "idempotency_key": run.idempotency_key,
        "run_token_hash": None,
        **_lease_fields(run.lease),
    }


def _lease_fields(lease: Lease | None) -> dict[str, Any]:
    if lease is None:
        return {"lease_holder": None, "lease_until": None}
    return {"lease_holder": lease.holder, "lease_until": lease.until}


def _run(doc: Snapshot) -> Run:
    d = _data(doc)
    holder = d.get("lease_holder")
    return Run(
        id=doc.id,
        agent_id=d["agent_id"],
        owner_id=d["owner_id"],
        task=d["task"],
        status=RunStatus(d["status"]),
        created_at=_time(d["created_at"]),
        started_at=_maybe_time(d.get("started_at")),
        finished_at=_maybe_time(d.get("finished_at")),
        error=d.get("error"),
        usage=Usage.model_validate(d["usage"]),
        idempotency_key=d.get("idempotency_key"),
        lease=None if holder is None else Lease(holder, _time(d["lease_until"])),
    )


def _event(run_id: str, doc: Snapshot) -> StoredEvent:
    d = _data(doc)
    return StoredEvent(run_id, int(d["seq"]), d["type"], json.loads(d["data"]), _time(d["time"]))


def _event_fields(event: StoredEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": event.type,
        "data": json.dumps(event.data),
        "time": event.time,
        "expire_at": event.time + EVENT_RETENTION,
    }


def _write_off(holds: dict[str, Any], *, holder: str | None, now: datetime) -> dict[str, Any]:
    """The update that counts the stale holds as output and removes them (from `holds` too)."""
    lost = token_holds.stale(holds, holder=holder, now=now)
    if not lost:
        return {}
    change: dict[str, Any] = {"usage.output_tokens": Increment(token_holds.tokens(holds, lost))}
    for hold_id in lost:
        del holds[hold_id]
        change[f"{HOLDS}.{hold_id}"] = DELETE_FIELD
    return change


def _data(doc: Snapshot) -> dict[str, Any]:
    data = doc.to_dict()
    if data is None:
        raise StoreError(f"{doc.reference.path} vanished while it was read")
    return data


def _statuses(statuses: Collection[RunStatus]) -> list[str]:
    return sorted(s.value for s in statuses)


class FirestoreStore:
    """Open with `FirestoreStore.open(project)`; FIRESTORE_EMULATOR_HOST selects an emulator."""

    def __init__(self, client: AsyncClient) -> None:
        self._db = client
        # One reservation at a time per run in this process: its transactions would only
        # abort each other on the run's document. Locks go when no call holds them.
        self._reserving: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    @classmethod
    def open(cls, project: str | None, database: str | None = None) -> FirestoreStore:
        return cls(AsyncClient(project=project, database=database))

    def _transaction(self) -> AsyncTransaction:
        return self._db.transaction(max_attempts=TRANSACTION_ATTEMPTS)

    def _query(
        self,
        name: str,
        *,
        parent: AsyncDocumentReference | None = None,
        equal: Mapping[str, Any] | None = None,
        bound: tuple[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncQuery | AsyncCollectionReference:
        """The query QUERIES names, with these values: the only way this store queries."""
        spec = QUERIES[name]
        equal = equal or {}
        if set(equal) != set(spec.equal) or (bound is None) != (spec.range is None):
            raise ValueError(f"query {name} takes {spec}, not {sorted(equal)} and {bound}")
        query: AsyncQuery | AsyncCollectionReference = (
            self._db.collection(spec.collection)
            if parent is None
            else parent.collection(spec.collection)
        )
        for field in spec.equal:
            value = equal[field]
            operator = "in" if isinstance(value, list) else "=="
            query = query.where(filter=FieldFilter(field, operator, value))
        if bound is not None and spec.range is not None:
            query = query.where(filter=FieldFilter(spec.range, bound[0], bound[1]))
        for field, direction in spec.order:
            query = query.order_by(
                field,
                direction=Query.ASCENDING if direction is _ASC else Query.DESCENDING,
            )
        if limit is not None:
            query = query.limit(limit)
        return query

    async def _documents(self, query: AsyncQuery | AsyncCollectionReference) -> list[Any]:
        return [doc async for doc in query.stream()]

    async def ping(self) -> None:
        try:
            await self._query("users", limit=1).get()
        except GoogleAPICallError as error:
            raise StoreError(f"Firestore did not answer: {error.message}") from error

    async def aclose(self) -> None:
        self._db.close()  # type: ignore[no-untyped-call]

    # Users and tokens.
    async def create_user(self, user: User) -> None:
        batch = self._db.batch()
        batch.create(self._db.collection("user_names").document(_key(user.name)), {"id": user.id})
        batch.create(
            self._db.collection("users").document(user.id),
            {"name": user.name, "created_at": user.created_at, "is_admin": user.is_admin},
        )
        try:
            await batch.commit()
        except AlreadyExists as error:
            raise StoreError(f"a user named {user.name!r} already exists") from error

    async def get_user(self, user_id: str) -> User | None:
        doc = await self._db.collection("users").document(user_id).get()
        return _user(doc) if doc.exists else None

    async def find_user_by_name(self, name: str) -> User | None:
        doc = await self._db.collection("user_names").document(_key(name)).get()
        return await self.get_user(_data(doc)["id"]) if doc.exists else None

    async def list_users(self) -> list[User]:
        return [_user(doc) for doc in await self._documents(self._query("users"))]

    async def create_token(self, token: ApiToken) -> None:
        await (
            self._db.collection("tokens")
            .document(token.token_hash)
            .create(
                {
                    "id": token.id,
                    "user_id": token.user_id,
                    "name": token.name,
                    "kind": token.kind.value,
                    "created_at": token.created_at,
                    "expires_at": token.expires_at,
                }
            )
        )

    async def find_token(self, token_hash: str) -> ApiToken | None:
        doc = await self._db.collection("tokens").document(token_hash).get()
        return _token(doc) if doc.exists else None

    async def consume_token(self, token_hash: str, kind: TokenKind) -> ApiToken | None:
        ref = self._db.collection("tokens").document(token_hash)

        @async_transactional
        async def consume(transaction: AsyncTransaction) -> ApiToken | None:
            doc = await ref.get(transaction=transaction)
            if not doc.exists or _data(doc)["kind"] != kind.value:
                return None
            transaction.delete(ref)
            return _token(doc)

        return await consume(self._transaction())

    async def list_tokens(self, user_id: str) -> list[ApiToken]:
        query = self._query("tokens_of_user", equal={"user_id": user_id})
        return [_token(doc) for doc in await self._documents(query)]

    async def delete_token(self, user_id: str, token_id: str) -> bool:
        query = self._query("token_of_user", equal={"user_id": user_id, "id": token_id})
        docs = await self._documents(query)
        for doc in docs:
            await doc.reference.delete()
        return bool(docs)

    # Agents.
    async def create_agent(self, agent: Agent) -> None:
        fields = {**_agent_fields(agent), "conversation_length": 0}
        await self._db.collection("agents").document(agent.id).create(fields)

    async def _owned_agent(self, owner_id: str, agent_id: str) -> Snapshot | None:
        doc = await self._db.collection("agents").document(agent_id).get()
        return doc if doc.exists and _data(doc)["owner_id"] == owner_id else None

    async def get_agent(self, owner_id: str, agent_id: str) -> Agent | None:
        doc = await self._owned_agent(owner_id, agent_id)
        return None if doc is None else _agent(doc)

    async def list_agents(self, owner_id: str, *, limit: int = 100) -> list[Agent]:
        query = self._query("agents_of_owner", equal={"owner_id": owner_id}, limit=limit)
        return [_agent(doc) for doc in await self._documents(query)]

    async def update_agent(self, agent: Agent) -> bool:
        ref = self._db.collection("agents").document(agent.id)
        fields = _agent_fields(agent)
        del fields["owner_id"], fields["created_at"]

        @async_transactional
        async def update(transaction: AsyncTransaction) -> bool:
            doc = await ref.get(transaction=transaction)
            if not doc.exists or _data(doc)["owner_id"] != agent.owner_id:
                return False
            transaction.update(ref, fields)
            return True

        return await update(self._transaction())

    async def delete_agent(self, owner_id: str, agent_id: str) -> bool:
        agent = await self._owned_agent(owner_id, agent_id)
        if agent is None:
            return False
        # The agent goes first: from then on its owner sees none of what is deleted after it.
        await agent.reference.delete()
        doomed: list[AsyncDocumentReference] = []
        runs = self._query("all_runs_of_agent", equal={"owner_id": owner_id, "agent_id": agent_id})
        for run in await self._documents(runs):
            events = self._query("all_events", parent=run.reference)
            doomed += [event.reference for event in await self._documents(events)]
            key = _data(run).get("idempotency_key")
            if key is not None:
                doomed.append(self._db.collection("run_keys").document(_key(owner_id, key)))
            doomed.append(run.reference)
        conversation = self._query("conversation", parent=agent.reference)
        doomed += [message.reference for message in await self._documents(conversation)]
        await self._delete_all(doomed)
        return True

    async def _delete_all(self, refs: Iterable[AsyncDocumentReference]) -> None:
        pending = list(refs)
        for start in range(0, len(pending), WRITES_PER_BATCH):
            batch = self._db.batch()
            for ref in pending[start : start + WRITES_PER_BATCH]:
                batch.delete(ref)
            await batch.commit()

    # Runs.
    async def create_run(self, run: Run) -> tuple[Run, bool]:
        batch = self._db.batch()
        batch.create(self._db.collection("runs").document(run.id), _run_fields(run))
        key_ref = None
        if run.idempotency_key is not None:
            key_ref = self._db.collection("run_keys").document(
                _key(run.owner_id, run.idempotency_key)
            )
            batch.create(key_ref, {"run_id": run.id, "owner_id": run.owner_id})
        try:
            await batch.commit()
        except AlreadyExists:
            if key_ref is None:
                raise
            key = await key_ref.get()
            first = None if not key.exists else await self.get_run_unscoped(_data(key)["run_id"])
            if first is None:
                raise
            return first, False
        return run, True

    async def get_run(self, owner_id: str, run_id: str) -> Run | None:
        run = await self.get_run_unscoped(run_id)
        return run if run is not None and run.owner_id == owner_id else None

    async def get_run_unscoped(self, run_id: str) -> Run | None:
        doc = await self._db.collection("runs").document(run_id).get()
        return _run(doc) if doc.exists else None

    async def list_runs(
        self,
        owner_id: str,
        *,
        agent_id: str | None = None,
        statuses: Collection[RunStatus] | None = None,
        limit: int = 100,
    ) -> list[Run]:
        if statuses is not None and not statuses:
            return []
        equal: dict[str, Any] = {"owner_id": owner_id}
        if agent_id is not None:
            equal["agent_id"] = agent_id
        if statuses is not None:
            equal["status"] = _statuses(statuses)
        name = {
            (False, False): "runs_of_owner",
            (True, False): "runs_of_agent",
            (False, True): "runs_of_owner_in",
            (True, True): "runs_of_agent_in",
        }[(agent_id is not None, statuses is not None)]
        query = self._query(name, equal=equal, limit=limit)
        return [_run(doc) for doc in await self._documents(query)]

    async def list_runs_in(
        self, statuses: Collection[RunStatus], *, limit: int = 1000
    ) -> list[Run]:
        if not statuses:
            return []
        query = self._query("runs_in", equal={"status": _statuses(statuses)}, limit=limit)
        return [_run(doc) for doc in await self._documents(query)]

    async def count_runs_in(self, statuses: Collection[RunStatus]) -> int:
        if not statuses:
            return 0
        query = self._query("count_runs_in", equal={"status": _statuses(statuses)})
        counted: Any = query.count()
        results = await counted.get()
        return int(results[0][0].value)

    async def transition_run(self, change: RunTransition) -> Run | None:
        @async_transactional
        async def apply(transaction: AsyncTransaction) -> Run | None:
            read = await self._read_for_transition(transaction, change)
            if read is None:
                return None
            self._write_transition(transaction, change, *read)
            return read[0]

        return await apply(self._transaction())

    async def finish_run(
        self, change: RunTransition, outcome: Outcome
    ) -> tuple[Run, StoredEvent] | None:
        parent = self._db.collection("runs").document(change.run_id)
        last_event = self._query("last_event", parent=parent, limit=1)

        @async_transactional
        async def apply(transaction: AsyncTransaction) -> tuple[Run, StoredEvent] | None:
            # Every read of a transaction comes before its first write.
            reads = last_event.stream(transaction=transaction)  # type: ignore[arg-type]
            last = [_event(change.run_id, doc) async for doc in reads]
            applied, reported = finishing(change, last[0] if last else None)
            read = await self._read_for_transition(transaction, applied)
            if read is None:
                return None
            run, agent = read
            self._write_transition(transaction, applied, run, agent)
            if reported is not None:
                return run, reported
            event = result_event(run, outcome, last[0].seq + 1 if last else 1, change.at)
            # Created, never set: an event stored at this seq meanwhile is not replaced.
            transaction.create(
                self._events(run.id).document(_seq_id(event.seq)), _event_fields(event)
            )
            return run, event

        return await apply(self._transaction())

    async def _read_for_transition(
        self, transaction: AsyncTransaction, change: RunTransition
    ) -> tuple[Run, Snapshot | None] | None:
        """The run as the transition leaves it, if it applies, and the agent it adds messages to.

        Every read of a transaction comes before its first write.
        """
        doc = await self._db.collection("runs").document(change.run_id).get(transaction=transaction)
        run = change.applied_to(_run(doc)) if doc.exists else None
        if run is None:
            return None
        agent = None
        if change.new_messages:
            agent_ref = self._db.collection("agents").document(run.agent_id)
            agent = await agent_ref.get(transaction=transaction)
        return run, agent

    def _write_transition(
        self,
        transaction: AsyncTransaction,
        change: RunTransition,
        run: Run,
        agent: Snapshot | None,
    ) -> None:
        """Write the transitioned run, and the messages it adds to its agent's conversation."""
        fields: dict[str, Any] = {
            "status": run.status.value,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "error": run.error,
            "usage": run.usage.model_dump(mode="json"),
            **_lease_fields(run.lease),
        }
        if change.run_token_hash is not None:
            fields["run_token_hash"] = change.run_token_hash
        transaction.update(self._db.collection("runs").document(run.id), fields)
        if agent is not None and agent.exists:
            self._write_messages(transaction, agent, change.new_messages)

    async def find_run_by_token(self, token_hash: str) -> Run | None:
        query = self._query("run_by_token", equal={"run_token_hash": token_hash}, limit=1)
        docs = await self._documents(query)
        return _run(docs[0]) if docs else None

    async def renew_leases(self, holder: str, until: datetime) -> list[str]:
        query = self._query(
            "leases_of_holder", equal={"lease_holder": holder, "status": RunStatus.RUNNING.value}
        )
        renewed = []
        for doc in await self._documents(query):
            # Only if nothing changed since the query: a run that ended, or that another
            # replica took over meanwhile, keeps what that change wrote.
            option = self._db.write_option(last_update_time=doc.update_time)
            try:
                await doc.reference.update({"lease_until": until}, option=option)
            except (GoogleAPICallError, ValueError):
                continue
            renewed.append(doc.id)
        return sorted(renewed)

    async def list_expired_leases(self, now: datetime, *, limit: int = 100) -> list[Run]:
        query = self._query(
            "expired_leases",
            equal={"status": RunStatus.RUNNING.value},
            bound=("<=", now),
            limit=limit,
        )
        return [_run(doc) for doc in await self._documents(query)]

    async def reserve_tokens(
        self, run_id: str, hold: TokenHold, *, budget: int, least: int, most: int, now: datetime
    ) -> Reservation | None:
        ref = self._db.collection("runs").document(run_id)

        @async_transactional
        async def reserve(transaction: AsyncTransaction) -> Reservation | None:
            doc = await ref.get(transaction=transaction)
            if not doc.exists:
                return None
            data = _data(doc)
            holds: dict[str, Any] = dict(data.get(HOLDS) or {})
            change = _write_off(holds, holder=None, now=now)
            written_off = change.get("usage.output_tokens")
            used = Usage.model_validate(data["usage"]).total_tokens
            used += 0 if written_off is None else written_off.value
            held = token_holds.tokens(holds)
            granted = min(most, budget - used - held)
            if granted >= least:
                change[f"{HOLDS}.{hold.id}"] = token_holds.entry(hold, granted)
            if change:
                transaction.update(ref, change)
            return Reservation(granted if granted >= least else 0, used, held)

        async with self._run_lock(run_id):
            return await reserve(self._transaction())

    def _run_lock(self, run_id: str) -> asyncio.Lock:
        """One change of a run's holds at a time in this replica: no transaction retries here."""
        lock = self._reserving.get(run_id)
        if lock is None:
            lock = self._reserving[run_id] = asyncio.Lock()
        return lock

    async def settle_tokens(self, run_id: str, hold_id: str | None, usage: Usage) -> Run | None:
        ref = self._db.collection("runs").document(run_id)
        # One write, so no reservation sees the tokens released before the usage is counted.
        change: dict[str, Any] = {
            f"usage.{k}": Increment(v) for k, v in usage.model_dump().items() if v
        }

        @async_transactional
        async def settle(transaction: AsyncTransaction) -> bool:
            doc = await ref.get(transaction=transaction)
            if not doc.exists:
                return False
            if hold_id not in (_data(doc).get(HOLDS) or {}):
                # Written off: its tokens were counted as used already.
                return True
            transaction.update(ref, {**change, f"{HOLDS}.{hold_id}": DELETE_FIELD})
            return True

        if hold_id is None:
            try:
                if change:
                    await ref.update(change)
            except NotFound:
                return None
        else:
            async with self._run_lock(run_id):
                if not await settle(self._transaction()):
                    return None
        return await self.get_run_unscoped(run_id)

    async def write_off_holds(self, run_id: str, *, holder: str | None, now: datetime) -> None:
        ref = self._db.collection("runs").document(run_id)

        @async_transactional
        async def write_off(transaction: AsyncTransaction) -> None:
            doc = await ref.get(transaction=transaction)
            if not doc.exists:
                return
            change = _write_off(dict(_data(doc).get(HOLDS) or {}), holder=holder, now=now)
            if change:
                transaction.update(ref, change)

        async with self._run_lock(run_id):
            await write_off(self._transaction())

    # Events.
    def _events(self, run_id: str) -> AsyncCollectionReference:
        events: AsyncCollectionReference = (
            self._db.collection("runs").document(run_id).collection("events")
        )
        return events

    async def append_events(self, run_id: str, events: Sequence[StoredEvent]) -> list[StoredEvent]:
        by_seq = {event.seq: event for event in events}
        refs = [self._events(run_id).document(_seq_id(seq)) for seq in sorted(by_seq)]
        stored: list[StoredEvent] = []
        for start in range(0, len(refs), WRITES_PER_BATCH):
            chunk = refs[start : start + WRITES_PER_BATCH]
            stored += await self._create_events(by_seq, chunk)
        return stored

    async def _create_events(
        self, by_seq: Mapping[int, StoredEvent], chunk: list[AsyncDocumentReference]
    ) -> list[StoredEvent]:
        """Create the chunk's events in one write, as a runner's batch is new but for re-sends.

        Only when one of them exists already does a transaction read which, to create the rest:
        checking first would cost a read per event and two more round trips on every batch.
        """
        batch = self._db.batch()
        for ref in chunk:
            batch.create(ref, _event_fields(by_seq[int(ref.id)]))
        try:
            await batch.commit()
        except AlreadyExists:
            return await self._create_missing_events(by_seq, chunk)
        return [by_seq[int(ref.id)] for ref in chunk]

    async def _create_missing_events(
        self, by_seq: Mapping[int, StoredEvent], chunk: list[AsyncDocumentReference]
    ) -> list[StoredEvent]:
        @async_transactional
        async def append(transaction: AsyncTransaction) -> list[StoredEvent]:
            # AsyncTransaction.get_all awaits an async generator; the client's get_all works.
            reads = self._db.get_all(chunk, transaction=transaction)
            existing = {doc.id async for doc in reads if doc.exists}
            stored = []
            for ref in chunk:
                if ref.id not in existing:
                    event = by_seq[int(ref.id)]
                    transaction.create(ref, _event_fields(event))
                    stored.append(event)
            return stored

        return await append(self._transaction())

    async def list_events(
        self, run_id: str, *, after: int = 0, limit: int = 1000
    ) -> list[StoredEvent]:
        parent = self._db.collection("runs").document(run_id)
        query = self._query("events_after", parent=parent, bound=(">", after), limit=limit)
        return [_event(run_id, doc) for doc in await self._documents(query)]

    async def last_event_seq(self, run_id: str) -> int:
        parent = self._db.collection("runs").document(run_id)
        docs = await self._documents(self._query("last_event", parent=parent, limit=1))
        return int(_data(docs[0])["seq"]) if docs else 0

    # Conversation.
    async def get_conversation(self, owner_id: str, agent_id: str) -> list[Message]:
        agent = await self._owned_agent(owner_id, agent_id)
        if agent is None:
            return []
        query = self._query("conversation", parent=agent.reference)
        return [json.loads(_data(doc)["message"]) for doc in await self._documents(query)]

    async def append_conversation(
        self, owner_id: str, agent_id: str, messages: Sequence[Message]
    ) -> None:
        ref = self._db.collection("agents").document(agent_id)

        @async_transactional
        async def append(transaction: AsyncTransaction) -> None:
            agent = await ref.get(transaction=transaction)
            if not agent.exists or _data(agent)["owner_id"] != owner_id:
                raise StoreError(f"agent {agent_id} does not exist")
            self._write_messages(transaction, agent, messages)

        await append(self._transaction())

    @staticmethod
    def _write_messages(
        transaction: AsyncTransaction, agent: Snapshot, messages: Sequence[Message]
    ) -> None:
        start = int(_data(agent).get("conversation_length", 0))
        conversation = agent.reference.collection("conversation")
        for seq, message in enumerate(messages, start=start + 1):
            transaction.create(
                conversation.document(_seq_id(seq)), {"seq": seq, "message": json.dumps(message)}
            )
        transaction.update(agent.reference, {"conversation_length": start + len(messages)})
