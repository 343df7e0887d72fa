// An agent's workspace: give it a task, watch the run, browse its history and its files.

import { getJson, sendJson } from "./api.js";
import { openAgentForm } from "./agent_form.js";
import { confirmAction } from "./dialogs.js";
import { h, replace } from "./dom.js";
import { filesPanel } from "./files.js";
import { historyPanel } from "./history.js";
import { isActive } from "./format.js";
import { notify } from "./notices.js";
import { runView } from "./run_view.js";

const SETTLE_ATTEMPTS = 20;
const SETTLE_INTERVAL_MS = 250;

function composer(agent, onSubmit) {
  const task = h("textarea", {
    id: "task",
    name: "task",
    rows: 3,
    required: true,
    placeholder: `What should ${agent.name} do?`,
    "aria-describedby": "task-hint",
  });
  const send = h("button", { type: "submit", class: "button primary" }, "Run task");
  const form = h(
    "form",
    { class: "composer card" },
    h("label", { for: "task", class: "visually-hidden" }, "Task"),
    task,
    h(
      "div",
      { class: "composer-footer" },
      h("span", { id: "task-hint", class: "hint" }, "Ctrl + Enter to send"),
      send,
    ),
  );
  task.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    send.disabled = true;
    try {
      await onSubmit(task.value);
      task.value = "";
    } finally {
      send.disabled = false;
      task.focus();
    }
  });
  return form;
}

function agentHeader(agent, { onEdit, onDelete }) {
  return h(
    "div",
    { class: "page-header workspace-header" },
    h(
      "div",
      { class: "workspace-title" },
      h("nav", { "aria-label": "Breadcrumb", class: "crumbs" }, h("a", { href: "#/" }, "Agents"), h("span", { "aria-hidden": "true" }, " / ")),
      h("h1", {}, agent.name),
      h(
        "p",
        { class: "muted" },
        h("span", { class: "chip" }, agent.model),
        ` · up to ${agent.limits.max_turns} turns, ${agent.limits.max_tokens.toLocaleString("en")} tokens, ${agent.limits.timeout_seconds}s`,
      ),
      agent.description ? h("p", { class: "agent-description" }, agent.description) : null,
    ),
    h(
      "div",
      { class: "header-actions" },
      h("button", { class: "button", type: "button", onClick: onEdit }, "Edit"),
      h("button", { class: "button danger-outline", type: "button", onClick: onDelete }, "Delete"),
    ),
  );
}

export async function openWorkspace(view, agentId, { navigate, reload, onFailure }) {
  replace(view, h("p", { class: "loading" }, "Loading the agent…"));
  const agent = await getJson(`/api/agents/${encodeURIComponent(agentId)}`);
  document.title = `${agent.name} · AI Agent Platform`;
  const history = historyPanel();
  const files = filesPanel(agent.id, { onFailure });
  const runArea = h("div", { class: "run-area" });
  let runs = [];
  let current = null;
  let showing = 0;

  async function loadRuns() {
    runs = (await getJson(`/api/agents/${agent.id}/runs?limit=100`)).items;
    history.show(agent.id, runs, current?.id);
  }

  async function start(task) {
    try {
      const run = await sendJson("POST", `/api/agents/${agent.id}/runs`, { task });
      runs = [run, ...runs];
      navigate(`#/agents/${agent.id}/runs/${run.id}`);
    } catch (failure) {
      onFailure(failure);
    }
  }

  // The run's result event can arrive a moment before the stored run says it has ended.
  async function storedOutcome(runId) {
    for (let attempt = 0; attempt < SETTLE_ATTEMPTS; attempt += 1) {
      const stored = await getJson(`/api/runs/${runId}`);
      if (!isActive(stored.status)) return stored;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_INTERVAL_MS));
    }
    return null;
  }

  function statusChanged(run) {
    runs = runs.map((known) => (known.id === run.id ? { ...known, status: run.status } : known));
    history.show(agent.id, runs, current?.id ?? run.id);
  }

  async function finished(runId) {
    try {
      const stored = await storedOutcome(runId);
      if (stored && current?.id === runId) current.view.settle(stored);
      await loadRuns();
      files.refresh();
    } catch (failure) {
      onFailure(failure);
    }
  }

  const header = agentHeader(agent, {
    onEdit: () =>
      openAgentForm({
        agent,
        onSaved: () => {
          notify(`Saved ${agent.name}`, { kind: "success" });
          reload();
        },
      }),
    onDelete: () =>
      confirmAction(
        `Delete ${agent.name}?`,
        "Its runs, their history and its workspace files are deleted too. This cannot be undone.",
        async () => {
          await sendJson("DELETE", `/api/agents/${agent.id}`);
          notify(`Deleted ${agent.name}`, { kind: "success" });
          navigate("#/");
        },
      ),
  });

  replace(
    view,
    header,
    h(
      "div",
      { class: "workspace" },
      h("div", { class: "workspace-main" }, composer(agent, start), runArea),
      h("aside", { class: "workspace-side" }, history.element, files.element),
    ),
  );
  await loadRuns();

  return {
    agentId: agent.id,
    async show(runId) {
      const ticket = ++showing;
      const target = runId ? runs.find((r) => r.id === runId) || (await getJson(`/api/runs/${encodeURIComponent(runId)}`)) : runs[0];
      // A later navigation won while this one was loading.
      if (ticket !== showing) return;
      if (current && target && current.id === target.id) return;
      current?.view.close();
      current = null;
      history.show(agent.id, runs, target?.id);
      if (!target) {
        replace(
          runArea,
          h(
            "div",
            { class: "empty card" },
            h("h2", {}, "No runs yet"),
            h("p", {}, `Give ${agent.name} a task above. You will see its answer stream in and every tool it uses, live.`),
          ),
        );
        return;
      }
      current = { id: target.id, view: runView(target, agent, { onStatus: statusChanged, onFinished: finished, onFailure }) };
      replace(runArea, current.view.element);
    },
    close() {
      current?.view.close();
    },
  };
}
