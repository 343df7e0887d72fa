// Errors and confirmations shown in words at the top of the page.

import { h } from "./dom.js";

const area = () => document.getElementById("notices");

export function notify(message, { kind = "error" } = {}) {
  const notice = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "notice-text" }, message),
    h("button", { class: "icon-button", "aria-label": "Dismiss", onClick: () => notice.remove() }, "×"),
  );
  area().append(notice);
  if (kind !== "error") setTimeout(() => notice.remove(), 4000);
  return notice;
}

export function clearNotices() {
  area().replaceChildren();
}

export function errorText(error) {
  return error instanceof Error ? error.message : String(error);
}
