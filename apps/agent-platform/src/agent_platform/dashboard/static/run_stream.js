// Following a run's events live over server-sent events, resuming after the last seq seen.
//
// Every event is delivered once, in order: the stream restarts at `after=<last seq>` after a
// drop and anything already seen is skipped. The server ends the stream after the run's result;
// a run that ended without one (cancelled while queued) is noticed by asking for its status.

import { ApiError, getJson } from "./api.js";
import { isActive } from "./format.js";

const TYPES = ["status", "text_delta", "tool_call", "tool_result", "usage", "error", "notice", "result"];
const PAGE = 1000;
const MAX_BACKOFF_MS = 4000;

export function followRun(runId, { onEvent, onConnection, onFailure }) {
  let last = 0;
  let source = null;
  let stopped = false;
  let retry = null;
  let attempts = 0;

  function deliver(event) {
    if (stopped || event.seq <= last) return;
    last = event.seq;
    onEvent(event);
    if (event.type === "result") stop("ended");
  }

  function open() {
    if (stopped) return;
    source = new EventSource(`/api/runs/${encodeURIComponent(runId)}/events/stream?after=${last}`);
    source.onopen = () => {
      attempts = 0;
      onConnection("live");
    };
    for (const type of TYPES) {
      source.addEventListener(type, (message) => deliver(JSON.parse(message.data)));
    }
    source.onerror = () => {
      source.close();
      source = null;
      if (!stopped) recover();
    };
  }

  async function drain() {
    for (;;) {
      const { items } = await getJson(`/api/runs/${encodeURIComponent(runId)}/events?after=${last}&limit=${PAGE}`);
      items.forEach(deliver);
      if (items.length < PAGE || stopped) return;
    }
  }

  async function recover() {
    try {
      const run = await getJson(`/api/runs/${encodeURIComponent(runId)}`);
      if (!isActive(run.status)) {
        await drain();
        if (!stopped) stop("ended");
        return;
      }
    } catch (failure) {
      if (failure instanceof ApiError && failure.status !== 0) {
        stop("closed");
        onFailure(failure);
        return;
      }
    }
    if (stopped) return;
    onConnection("reconnecting");
    attempts += 1;
    retry = setTimeout(open, Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempts));
  }

  function stop(state) {
    stopped = true;
    clearTimeout(retry);
    if (source) source.close();
    onConnection(state);
  }

  open();
  return {
    close: () => {
      if (!stopped) stop("closed");
    },
  };
}
