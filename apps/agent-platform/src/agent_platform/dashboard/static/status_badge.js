// A run's status as a coloured word.

import { h } from "./dom.js";
import { statusWord } from "./format.js";

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}`, dataset: { status } }, statusWord(status));
}
