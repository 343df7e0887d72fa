// The agent's workspace: its files, to view, download or add to between runs.

import { filePath, getJson, request } from "./api.js";
import { confirmAction, openDialog } from "./dialogs.js";
import { h, replace } from "./dom.js";
import { bytes } from "./format.js";
import { notify } from "./notices.js";

function deleteButton(agentId, file, { onDeleted }) {
  return h(
    "button",
    {
      class: "button danger",
      type: "button",
      onClick: () =>
        confirmAction(
          `Delete ${file.path}?`,
          file.link_target == null
            ? "The file is removed from the workspace; the agent's next run will not find it. This cannot be undone."
            : "The link is removed from the workspace; the file it points to stays. This cannot be undone.",
          async () => {
            await request("DELETE", filePath(agentId, file.path));
            notify(`Deleted ${file.path}`, { kind: "success" });
            onDeleted();
          },
        ),
    },
    "Delete",
  );
}

async function viewFile(agentId, file, { onDeleted }) {
  const content = h("pre", { class: "file-content" }, "Loading…");
  const actions = h("div", { class: "actions" });
  const viewer = openDialog(file.path, h("div", { class: "stack" }, content, actions), { wide: true });
  actions.append(
    deleteButton(agentId, file, {
      onDeleted: () => {
        viewer.close();
        onDeleted();
      },
    }),
  );
  if (file.link_target != null) {
    replace(content, h("span", { class: "muted" }, `A link to ${file.link_target}`));
    return;
  }
  actions.append(h("a", { class: "button", href: filePath(agentId, file.path, { download: true }), download: file.path.split("/").pop() }, "Download"));
  try {
    const response = await request("GET", filePath(agentId, file.path));
    if ((response.headers.get("content-type") || "").startsWith("text/")) {
      content.textContent = (await response.text()) || "(empty file)";
    } else {
      replace(content, h("span", { class: "muted" }, `A binary file of ${bytes(file.size)}: download it to open it.`));
    }
  } catch (failure) {
    replace(content, h("span", { class: "form-error" }, failure.message));
  }
}

export function filesPanel(agentId, { onFailure }) {
  const list = h("ul", { class: "file-list" }, h("li", { class: "muted empty-line" }, "Loading files…"));
  const picker = h("input", { type: "file", id: "upload-file", class: "visually-hidden", multiple: true });
  const upload = h("label", { for: "upload-file", class: "button small", tabindex: "0", role: "button" }, "Upload");
  upload.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      picker.click();
    }
  });
  const element = h(
    "section",
    { class: "panel files", "aria-labelledby": "files-title" },
    h("div", { class: "panel-header" }, h("h2", { id: "files-title" }, "Files"), upload, picker),
    list,
  );

  async function refresh() {
    try {
      const { items } = await getJson(`/api/agents/${agentId}/files`);
      const files = items.filter((f) => !f.is_dir);
      if (!files.length) {
        replace(list, h("li", { class: "muted empty-line" }, "No files yet. The agent's files appear here after a run; you can upload some too."));
        return;
      }
      replace(
        list,
        files.map((file) =>
          h(
            "li",
            { class: "file-row", dataset: { path: file.path } },
            h("button", { class: "link-button file-name", type: "button", onClick: () => viewFile(agentId, file, { onDeleted: refresh }) }, file.path),
            file.link_target == null
              ? [
                  h("span", { class: "muted file-size" }, bytes(file.size)),
                  h("a", { class: "icon-link", href: filePath(agentId, file.path, { download: true }), download: file.path.split("/").pop(), "aria-label": `Download ${file.path}`, title: "Download" }, "↓"),
                ]
              : h("span", { class: "muted file-size" }, `→ ${file.link_target}`),
          ),
        ),
      );
    } catch (failure) {
      replace(list, h("li", { class: "form-error" }, failure.message), h("li", {}, resetButton()));
    }
  }

  function resetButton() {
    return h(
      "button",
      {
        class: "button small danger",
        type: "button",
        onClick: () =>
          confirmAction(
            "Reset the workspace?",
            "Every file of the agent's workspace is deleted; its next run starts in an empty one. This cannot be undone.",
            async () => {
              await request("DELETE", `/api/agents/${encodeURIComponent(agentId)}/workspace`);
              notify("The workspace was reset", { kind: "success" });
              refresh();
            },
            { confirmLabel: "Reset" },
          ),
      },
      "Reset workspace",
    );
  }

  picker.addEventListener("change", async () => {
    for (const file of picker.files) {
      try {
        await request("PUT", filePath(agentId, file.name), { body: file, headers: { "Content-Type": "application/octet-stream" } });
        notify(`Uploaded ${file.name}`, { kind: "success" });
      } catch (failure) {
        onFailure(new Error(`${file.name} was not uploaded: ${failure.message}`));
      }
    }
    picker.value = "";
    refresh();
  });

  refresh();
  return { element, refresh };
}
