// Modal dialogs on the native <dialog>: focus is trapped and Escape closes them.

import { h } from "./dom.js";

export function openDialog(title, body, { wide = false } = {}) {
  const titleId = `dialog-${Math.random().toString(36).slice(2)}`;
  const dialog = h(
    "dialog",
    { class: wide ? "dialog wide" : "dialog", "aria-labelledby": titleId },
    h(
      "header",
      { class: "dialog-header" },
      h("h2", { id: titleId }, title),
      h("button", { class: "icon-button", "aria-label": "Close", onClick: () => dialog.close() }, "×"),
    ),
    body,
  );
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function confirmAction(title, message, action, { confirmLabel = "Delete" } = {}) {
  const error = h("p", { class: "form-error", role: "alert" });
  const confirm = h("button", { class: "button danger", type: "submit" }, confirmLabel);
  const form = h(
    "form",
    { class: "stack", method: "dialog" },
    h("p", {}, message),
    error,
    h(
      "div",
      { class: "actions" },
      h("button", { class: "button", type: "button", onClick: () => dialog.close() }, "Cancel"),
      confirm,
    ),
  );
  const dialog = openDialog(title, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    confirm.disabled = true;
    error.textContent = "";
    try {
      await action();
      dialog.close();
    } catch (failure) {
      error.textContent = failure.message;
      confirm.disabled = false;
    }
  });
  confirm.focus();
  return dialog;
}
