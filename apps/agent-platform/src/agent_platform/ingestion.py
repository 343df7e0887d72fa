"""Events a runner reports: checked, stored once by seq, then pushed to subscribers."""

from __future__ import annotations

from agent_runner.protocol import BatchAck, EventBatch, EventType, RunResult
from pydantic import ValidationError

from agent_platform.bus import EventBus
from agent_platform.domain import Run, StoredEvent
from agent_platform.metrics import Metrics
from agent_platform.scheduler import Scheduler
from agent_platform.store import Store


class BatchRejected(Exception):
    """The batch cannot be stored as sent; the message tells the runner what to send instead."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def check_batch(batch: EventBatch, stored_up_to: int) -> RunResult | None:
    """Refuse a batch that would leave a gap or put anything after the terminal result.

    Returns the run's result when the batch carries it.
    """
    seqs = [event.seq for event in batch.events]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise BatchRejected(
            f"event seqs in a batch must be consecutive and increasing, got {seqs}", status=422
        )
    if seqs[0] > stored_up_to + 1:
        raise BatchRejected(
            f"events {stored_up_to + 1}..{seqs[0] - 1} are missing; "
            f"send again from seq {stored_up_to + 1}",
            status=409,
        )
    result: RunResult | None = None
    for position, event in enumerate(batch.events):
        if event.type is not EventType.RESULT:
            continue
        if position != len(batch.events) - 1:
            raise BatchRejected("no event may follow the terminal result event", status=422)
        try:
            result = RunResult.model_validate(event.data)
        except ValidationError as error:
            message = f"the result event's data is not a RunResult: {error}"
            raise BatchRejected(message, status=422) from error
    return result


async def ingest(
    *,
    store: Store,
    bus: EventBus,
    scheduler: Scheduler,
    metrics: Metrics,
    run: Run,
    batch: EventBatch,
) -> BatchAck:
    stored_up_to = await store.last_event_seq(run.id)
    last_sent = batch.events[-1].seq
    if run.status.is_terminal:
        if last_sent <= stored_up_to:
            return BatchAck(acked_seq=stored_up_to)  # a re-send of what is stored: harmless
        raise BatchRejected(
            f"run {run.id} is already {run.status.value}; it accepts no more events", status=409
        )
    result = check_batch(batch, stored_up_to)
    new = await store.append_events(
        run.id,
        [StoredEvent(run.id, e.seq, e.type.value, e.data, e.time) for e in batch.events],
    )
    metrics.events_ingested.inc(len(new))
    if result is not None and any(e.type == EventType.RESULT for e in new):
        # Finished before it is announced: whoever sees the result then reads a finished run.
        await scheduler.complete(run.id, result)
    bus.publish(run.id, new)
    return BatchAck(acked_seq=max(stored_up_to, last_sent))
