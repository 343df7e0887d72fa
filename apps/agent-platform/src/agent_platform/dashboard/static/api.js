// The platform's HTTP API as the dashboard calls it: the session cookie, the CSRF header, and
// every error turned into a sentence.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export class SignedOut extends ApiError {}

const SAFE = new Set(["GET", "HEAD"]);

function csrfToken() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("ap_csrf="));
  return found ? decodeURIComponent(found.slice("ap_csrf=".length)) : "";
}

async function messageOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.message === "string") return body.message;
    if (body && typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: fall through to the status line
  }
  return `the platform answered ${response.status} ${response.statusText}`.trim();
}

export async function request(method, path, { json, body, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (!SAFE.has(method)) init.headers["X-CSRF-Token"] = csrfToken();
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "The platform cannot be reached. Check your connection and try again.");
  }
  if (response.status === 401 && !headers.Authorization) {
    throw new SignedOut(401, await messageOf(response));
  }
  if (!response.ok) throw new ApiError(response.status, await messageOf(response));
  return response;
}

export async function getJson(path) {
  return (await request("GET", path)).json();
}

export async function sendJson(method, path, json) {
  const response = await request(method, path, { json });
  return response.status === 204 ? null : response.json();
}

export function filePath(agentId, path, { download = false } = {}) {
  const encoded = path.split("/").map(encodeURIComponent).join("/");
  return `/api/agents/${agentId}/files/${encoded}${download ? "?download=true" : ""}`;
}
