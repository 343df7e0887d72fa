// The dashboard: who is signed in, which screen the address names, and errors in words.

import { ApiError, SignedOut, getJson, request } from "./api.js";
import { renderAgents } from "./agents.js";
import { h, replace } from "./dom.js";
import { clearNotices, notify } from "./notices.js";
import { renderSignIn } from "./signin.js";
import { openWorkspace } from "./workspace.js";

const view = document.getElementById("view");
const account = document.getElementById("account");
const WORKSPACE = /^#\/agents\/([^/]+)(?:\/runs\/([^/]+))?$/;

let user = null;
let workspace = null;
// Something to tell whoever arrives, once: signed in as a notice, signed out on the sign-in page.
let arrivalNotice = null;

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function closeWorkspace() {
  workspace?.close();
  workspace = null;
}

function showAccount() {
  if (!user) {
    account.replaceChildren();
    return;
  }
  replace(
    account,
    h("span", { class: "user-name", title: user.id }, user.name),
    h("button", { class: "button small", type: "button", onClick: signOut }, "Sign out"),
  );
}

async function signOut() {
  try {
    await request("POST", "/api/auth/logout");
  } catch (failure) {
    if (!(failure instanceof SignedOut)) {
      notify(failure.message);
      return;
    }
  }
  showSignIn("You have signed out.");
}

function showSignIn(reason) {
  closeWorkspace();
  user = null;
  showAccount();
  renderSignIn(view, {
    reason,
    onSignedIn: () => {
      clearNotices();
      route();
    },
  });
}

function failed(failure) {
  if (failure instanceof SignedOut) {
    showSignIn(user ? "Your session has ended. Sign in again to continue." : arrivalNotice);
    arrivalNotice = null;
    return;
  }
  notify(failure.message);
}

function showError(failure) {
  closeWorkspace();
  replace(
    view,
    h(
      "div",
      { class: "empty card error-state" },
      h("h2", {}, failure instanceof ApiError && failure.status === 404 ? "Not found" : "Something went wrong"),
      h("p", { role: "alert" }, failure.message),
      h("div", { class: "actions" }, h("a", { class: "button", href: "#/" }, "Back to agents"), h("button", { class: "button primary", type: "button", onClick: () => route() }, "Try again")),
    ),
  );
}

async function route() {
  try {
    if (!user) {
      user = await getJson("/api/me");
      showAccount();
      if (arrivalNotice) notify(arrivalNotice);
      arrivalNotice = null;
    }
    const match = (location.hash || "#/").match(WORKSPACE);
    if (match) {
      const [, agentId, runId] = match;
      if (workspace?.agentId !== agentId) {
        closeWorkspace();
        workspace = await openWorkspace(view, agentId, { navigate, reload, onFailure: failed });
      }
      await workspace.show(runId);
    } else {
      closeWorkspace();
      await renderAgents(view, { navigate });
    }
  } catch (failure) {
    if (failure instanceof SignedOut) failed(failure);
    else showError(failure);
  }
}

function reload() {
  closeWorkspace();
  route();
}

// A login link that did not work comes back as `?login=expired`: say so, and drop it from the
// address so a reload does not repeat it.
if (new URLSearchParams(location.search).get("login") === "expired") {
  arrivalNotice =
    "This login link was used already or has expired. Run `agent-platform login-url` for a new one, or sign in with an API token.";
  history.replaceState(null, "", `/${location.hash}`);
}
// Whoever runs agents unconfined on this machine sees it on every screen.
async function showSandboxWarning() {
  try {
    const health = await getJson("/healthz");
    document.getElementById("sandbox-warning").hidden = health.details?.local_sandbox !== "none";
  } catch {
    // The warning is a courtesy; the page works without it.
  }
}

window.addEventListener("hashchange", () => route());
showSandboxWarning();
route();
