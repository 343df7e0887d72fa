// Signing in: with the one-time login link the server prints, or by pasting an API token,
// which is exchanged for a browser session and never stored by the page.

import { ApiError, request } from "./api.js";
import { h, replace } from "./dom.js";

export function renderSignIn(view, { reason, onSignedIn }) {
  const error = h("p", { class: "form-error", role: "alert", id: "signin-error" });
  const token = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    required: true,
    placeholder: "ap_…",
    "aria-describedby": "token-help signin-error",
  });
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");

  async function signIn(event) {
    event.preventDefault();
    error.textContent = "";
    submit.disabled = true;
    try {
      await request("POST", "/api/auth/session", {
        headers: { Authorization: `Bearer ${token.value.trim()}` },
      });
      token.value = "";
      onSignedIn();
    } catch (failure) {
      error.textContent =
        failure instanceof ApiError && failure.status === 401
          ? "This API token is not valid. Create one with `agent-platform token create`."
          : failure.message;
      token.focus();
    } finally {
      submit.disabled = false;
    }
  }

  replace(
    view,
    h(
      "section",
      { class: "signin card", "aria-labelledby": "signin-title" },
      h("h1", { id: "signin-title" }, "Sign in"),
      reason ? h("p", { class: "callout" }, reason) : null,
      h(
        "p",
        {},
        "Open the one-time login link the platform printed when it started (",
        h("code", {}, "make up"),
        "). For a new link, run ",
        h("code", {}, "agent-platform login-url"),
        ".",
      ),
      h("div", { class: "divider" }, h("span", {}, "or use an API token")),
      h(
        "form",
        { onSubmit: signIn, class: "stack" },
        h("label", { for: "token" }, "API token"),
        token,
        h(
          "p",
          { id: "token-help", class: "hint" },
          "Create one with ",
          h("code", {}, "agent-platform token create"),
          ".",
        ),
        error,
        submit,
      ),
    ),
  );
  token.focus();
}
