// The agent's runs, newest first; each opens its replay.

import { h, replace } from "./dom.js";
import { ago, firstLine } from "./format.js";
import { statusBadge } from "./status_badge.js";

export function historyPanel() {
  const list = h("ol", { class: "history-list" });
  const element = h(
    "section",
    { class: "panel history", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "Run history"),
    list,
  );
  return {
    element,
    show(agentId, runs, selectedId) {
      if (!runs.length) {
        replace(list, h("li", { class: "muted empty-line" }, "No runs yet."));
        return;
      }
      replace(
        list,
        runs.map((run) =>
          h(
            "li",
            {},
            h(
              "a",
              {
                class: "history-item",
                href: `#/agents/${agentId}/runs/${run.id}`,
                "aria-current": run.id === selectedId ? "true" : null,
                dataset: { runId: run.id },
              },
              statusBadge(run.status),
              h("span", { class: "history-task" }, firstLine(run.task, 60)),
              h("span", { class: "history-time muted" }, ago(run.created_at)),
            ),
          ),
        ),
      );
    },
  };
}
