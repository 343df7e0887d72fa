// The agents screen: each agent with its latest run, and a way to create one.

import { getJson } from "./api.js";
import { openAgentForm } from "./agent_form.js";
import { h, replace } from "./dom.js";
import { ago, firstLine } from "./format.js";
import { statusBadge } from "./status_badge.js";

function agentCard(agent) {
  const latest = agent.latest_run;
  return h(
    "li",
    { class: "agent-card card", dataset: { agentId: agent.id } },
    h(
      "a",
      { class: "agent-link", href: `#/agents/${agent.id}` },
      h("span", { class: "agent-name" }, agent.name),
      h("span", { class: "agent-model" }, agent.model),
    ),
    h("p", { class: "agent-description" }, agent.description || "No description"),
    h(
      "div",
      { class: "agent-latest" },
      latest
        ? [statusBadge(latest.status), h("span", { class: "muted" }, `${firstLine(latest.task, 48)} · ${ago(latest.created_at)}`)]
        : h("span", { class: "muted" }, "No runs yet"),
    ),
  );
}

export async function renderAgents(view, { navigate }) {
  document.title = "Agents · AI Agent Platform";
  const list = h("div", { class: "agents-body" }, h("p", { class: "loading" }, "Loading agents…"));
  const create = () => openAgentForm({ onSaved: (agent) => navigate(`#/agents/${agent.id}`) });
  replace(
    view,
    h(
      "div",
      { class: "page-header" },
      h("h1", {}, "Agents"),
      h("button", { class: "button primary", onClick: create }, "New agent"),
    ),
    list,
  );
  const { items } = await getJson("/api/agents");
  if (!items.length) {
    replace(
      list,
      h(
        "div",
        { class: "empty card" },
        h("h2", {}, "No agents yet"),
        h("p", {}, "An agent is a Claude model with instructions and a workspace of files. Create one, then give it tasks."),
        h("button", { class: "button primary", onClick: create }, "Create your first agent"),
      ),
    );
    return;
  }
  replace(list, h("ul", { class: "agent-grid" }, items.map(agentCard)));
}
