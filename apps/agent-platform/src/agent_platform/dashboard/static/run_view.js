// One run as it happens or as it happened: the task, streamed text, tool calls, status,
// elapsed time, tokens and cost. Live and replayed runs are drawn from the same events.

import { request } from "./api.js";
import { h, replace } from "./dom.js";
import { count, duration, isActive, usd, when } from "./format.js";
import { cost, totalTokens } from "./pricing.js";
import { followRun } from "./run_stream.js";
import { statusBadge } from "./status_badge.js";
import { toolCallCard } from "./tool_call.js";

const CONNECTION_WORDS = { live: "Live", reconnecting: "Reconnecting…", ended: "", closed: "" };

export function runView(initialRun, agent, { onStatus, onFinished, onFailure }) {
  let run = initialRun;
  let shownStatus = run.status;
  let usage = run.usage;
  let textBlock = null;
  let ticker = null;
  const tools = new Map();

  const status = h("span", { class: "run-status" });
  const elapsed = h("span", { class: "metric", "aria-label": "Elapsed time" });
  const tokens = h("span", { class: "metric", "aria-label": "Tokens used" });
  const price = h("span", { class: "metric", "aria-label": "Cost" });
  const connection = h("span", { class: "connection", dataset: { state: "connecting" } });
  const cancel = h("button", { class: "button danger small", type: "button", onClick: cancelRun }, "Cancel run");
  const problems = h("div", { class: "run-problems" });
  const transcript = h("div", { class: "transcript", "aria-live": "polite" });
  const waiting = h("p", { class: "muted waiting" }, "Waiting for the agent to start…");

  const element = h(
    "article",
    { class: "run card", dataset: { runId: run.id } },
    h(
      "header",
      { class: "run-header" },
      h("div", { class: "run-title" }, status, h("span", { class: "muted" }, `Sent ${when(run.created_at)}`)),
      h("div", { class: "run-metrics" }, connection, elapsed, tokens, price, cancel),
    ),
    h("div", { class: "bubble task" }, h("span", { class: "bubble-label" }, "Task"), h("p", { class: "task-text" }, run.task)),
    transcript,
    problems,
  );
  transcript.append(waiting);

  async function cancelRun() {
    cancel.disabled = true;
    cancel.textContent = "Cancelling…";
    try {
      await request("POST", `/api/runs/${run.id}/cancel`);
    } catch (failure) {
      cancel.disabled = false;
      cancel.textContent = "Cancel run";
      onFailure(failure);
    }
  }

  function draw() {
    replace(status, statusBadge(run.status));
    const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
    const start = Date.parse(run.started_at || run.created_at);
    elapsed.textContent = `${duration(end - start)} elapsed`;
    tokens.textContent = `${count(totalTokens(usage))} tokens`;
    tokens.title = `${count(usage.input_tokens)} in · ${count(usage.output_tokens)} out · ${count(usage.cache_read_input_tokens)} cache read · ${count(usage.cache_creation_input_tokens)} cache write`;
    const amount = cost(agent.model, usage);
    price.textContent = usd(amount);
    price.title = amount === null ? `No list price is known for ${agent.model}` : "At Anthropic's list prices";
    cancel.hidden = !isActive(run.status);
    element.dataset.status = run.status;
    if (run.status !== shownStatus) {
      shownStatus = run.status;
      onStatus(run);
    }
    if (isActive(run.status) && !ticker) ticker = setInterval(draw, 1000);
    if (!isActive(run.status) && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
  }

  function showProblem(message) {
    problems.append(h("p", { class: "callout error" }, message));
  }

  function apply(event) {
    waiting.remove();
    const data = event.data;
    switch (event.type) {
      case "status":
        // The sandbox reports its phases (starting, running): either way the run has begun.
        if (isActive(run.status)) run = { ...run, status: "running", started_at: run.started_at || event.time };
        // A reply cut mid-stream is asked for again: its answer starts a text block of its own.
        if (data.status === "retrying") textBlock = null;
        if (!transcript.childElementCount) {
          waiting.textContent = data.status === "starting" ? "The sandbox is starting…" : "The agent is at work…";
          transcript.append(waiting);
        }
        break;
      case "text_delta":
        if (!textBlock) {
          textBlock = h("div", { class: "bubble answer" }, h("p", { class: "answer-text" }));
          transcript.append(textBlock);
        }
        textBlock.firstChild.append(data.text);
        break;
      case "tool_call": {
        textBlock = null;
        const card = toolCallCard(data);
        tools.set(data.id, card);
        transcript.append(card.element);
        break;
      }
      case "tool_result":
        tools.get(data.id)?.result(data);
        break;
      case "usage":
        usage = data;
        break;
      case "error":
        showProblem(data.message);
        break;
      case "notice":
        problems.append(h("p", { class: "callout warning" }, data.message));
        break;
      case "result":
        run = { ...run, status: data.outcome, finished_at: run.finished_at || event.time };
        if (data.usage) usage = data.usage;
        if (data.error && !problems.querySelector(".error")) showProblem(data.error);
        break;
      default:
        break;
    }
    draw();
  }

  draw();
  const stream = followRun(run.id, {
    onEvent: apply,
    onConnection(state) {
      connection.dataset.state = state;
      connection.textContent = CONNECTION_WORDS[state] ?? "";
      if (state === "ended") {
        waiting.remove();
        onFinished(run.id);
      }
    },
    onFailure,
  });

  return {
    element,
    // The run as stored, once it has finished: exact times and usage.
    settle(stored) {
      if (isActive(stored.status)) return;
      run = stored;
      usage = stored.usage;
      if (stored.error && !problems.querySelector(".error")) showProblem(stored.error);
      if (!transcript.childElementCount && !isActive(stored.status)) {
        transcript.append(h("p", { class: "muted" }, "This run recorded no steps."));
      }
      draw();
    },
    close() {
      stream.close();
      clearInterval(ticker);
    },
  };
}
