// Creating or editing an agent: name, description, system prompt, model and limits.

import { sendJson } from "./api.js";
import { openDialog } from "./dialogs.js";
import { h } from "./dom.js";

const DEFAULT_LIMITS = { max_turns: 20, max_tokens: 200000, timeout_seconds: 600 };

function field(id, label, control, hint) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
  );
}

function numberInput(id, value, min, max) {
  return h("input", { id, name: id, type: "number", min, max, step: 1, required: true, value: String(value) });
}

export function openAgentForm({ agent = null, onSaved }) {
  const limits = agent ? agent.limits : DEFAULT_LIMITS;
  const name = h("input", { id: "agent-name", name: "name", required: true, maxlength: 100, value: agent?.name ?? "", autocomplete: "off" });
  const description = h("input", { id: "agent-description", name: "description", maxlength: 2000, value: agent?.description ?? "", autocomplete: "off" });
  const prompt = h("textarea", { id: "agent-prompt", name: "system_prompt", rows: 5, maxlength: 100000 });
  prompt.value = agent?.system_prompt ?? "";
  const model = h("input", { id: "agent-model", name: "model", maxlength: 200, value: agent?.model ?? "", placeholder: "the platform's default model", autocomplete: "off" });
  const turns = numberInput("agent-max-turns", limits.max_turns, 1, 500);
  const tokens = numberInput("agent-max-tokens", limits.max_tokens, 1000, 10000000);
  const timeout = numberInput("agent-timeout", limits.timeout_seconds, 5, 86400);
  const error = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "submit", class: "button primary" }, agent ? "Save changes" : "Create agent");

  const form = h(
    "form",
    { class: "stack agent-form", novalidate: false },
    field("agent-name", "Name", name),
    field("agent-description", "Description", description),
    field("agent-prompt", "System prompt", prompt, "How the agent should behave, in your words."),
    field("agent-model", "Model", model),
    h(
      "fieldset",
      { class: "limits" },
      h("legend", {}, "Limits per run"),
      field("agent-max-turns", "Turns", turns),
      field("agent-max-tokens", "Tokens", tokens),
      field("agent-timeout", "Timeout (seconds)", timeout),
    ),
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "button", onClick: () => dialog.close() }, "Cancel"),
      save,
    ),
  );

  const dialog = openDialog(agent ? `Edit ${agent.name}` : "New agent", form);
  name.focus();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const body = {
      name: name.value,
      description: description.value,
      system_prompt: prompt.value,
      limits: {
        max_turns: Number(turns.value),
        max_tokens: Number(tokens.value),
        timeout_seconds: Number(timeout.value),
      },
    };
    if (model.value.trim()) body.model = model.value.trim();
    save.disabled = true;
    try {
      const saved = agent
        ? await sendJson("PATCH", `/api/agents/${agent.id}`, body)
        : await sendJson("POST", "/api/agents", body);
      dialog.close();
      onSaved(saved);
    } catch (failure) {
      error.textContent = failure.message;
    } finally {
      save.disabled = false;
    }
  });
  return dialog;
}
