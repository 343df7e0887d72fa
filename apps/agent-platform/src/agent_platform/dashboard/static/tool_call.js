// One tool call of a run: what the agent asked for and what it got back, collapsible, with
// long output cut to a preview until the reader asks for all of it.

import { h, replace } from "./dom.js";
import { count, firstLine } from "./format.js";

const PREVIEW_CHARS = 1200;
const PREVIEW_LINES = 12;

function brief(input) {
  if (!input || typeof input !== "object") return "";
  for (const key of ["command", "path", "query", "url"]) {
    if (typeof input[key] === "string") {
      const extra = key === "command" && typeof input.path === "string" ? ` ${input.path}` : "";
      return firstLine(`${input[key]}${extra}`, 80);
    }
  }
  return firstLine(JSON.stringify(input), 80);
}

function preview(text) {
  const lines = text.split("\n");
  let cut = lines.length > PREVIEW_LINES ? lines.slice(0, PREVIEW_LINES).join("\n") : text;
  if (cut.length > PREVIEW_CHARS) cut = cut.slice(0, PREVIEW_CHARS);
  return cut;
}

function outputBlock(text, isError, truncatedByRunner) {
  const pre = h("pre", { class: isError ? "tool-output is-error" : "tool-output" });
  const shortened = preview(text);
  const block = h("div", { class: "tool-section" }, h("h4", {}, isError ? "Error" : "Output"), pre);
  if (shortened.length === text.length) {
    pre.textContent = text || "(no output)";
  } else {
    let expanded = false;
    const toggle = h("button", { class: "link-button show-all", type: "button" });
    const render = () => {
      pre.textContent = expanded ? text : `${shortened}…`;
      toggle.textContent = expanded
        ? "Show less"
        : `Show all (${count(text.length - shortened.length)} more characters)`;
    };
    toggle.addEventListener("click", () => {
      expanded = !expanded;
      render();
    });
    render();
    block.append(toggle);
  }
  if (truncatedByRunner) {
    block.append(h("p", { class: "hint" }, "The sandbox kept only part of this output."));
  }
  return block;
}

export function toolCallCard(call) {
  const state = h("span", { class: "tool-state pending" }, "running…");
  const body = h(
    "div",
    { class: "tool-body" },
    h("div", { class: "tool-section" }, h("h4", {}, "Input"), h("pre", { class: "tool-input" }, JSON.stringify(call.input, null, 2))),
  );
  const output = h("div", { class: "tool-result" });
  body.append(output);
  const element = h(
    "details",
    { class: "tool-call", open: true, dataset: { toolId: call.id } },
    h(
      "summary",
      {},
      h("span", { class: "tool-icon", "aria-hidden": "true" }, "⚙"),
      h("span", { class: "tool-name" }, call.name),
      h("code", { class: "tool-brief" }, brief(call.input)),
      state,
    ),
    body,
  );
  return {
    element,
    result(data) {
      const text = typeof data.output === "string" ? data.output : JSON.stringify(data.output, null, 2);
      state.className = data.is_error ? "tool-state failed" : "tool-state done";
      state.textContent = data.is_error ? "error" : "done";
      replace(output, outputBlock(text, data.is_error, data.truncated));
    },
  };
}
