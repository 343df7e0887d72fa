"""The dashboard in headless Chromium against the real platform, the real runner and the
scripted Messages API: what a user sees while signing in, creating agents and watching runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, FilePayload, Locator, Page, expect
from servers.browser import (
    WAIT_MS,
    browser_context,
    chromium_browser,
    screenshot,
)
from servers.cuttable_proxy import CuttableProxy
from servers.messages_api import MessagesApiServer, Reply, Text, ToolUse
from servers.platform import RunningPlatform, running_platform
from servers.waiting import wait_for

pytestmark = pytest.mark.browser
__all__ = ["chromium_browser"]

EDITOR = "str_replace_based_edit_tool"
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def platform(
    messages_api: MessagesApiServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    env = {
        "AGENT_PLATFORM_ANTHROPIC_BASE_URL": messages_api.base_url,
        "AGENT_PLATFORM_ANTHROPIC_API_KEY": "sk-upstream-dashboard-key",
        "AGENT_PLATFORM_MAX_CONCURRENT_RUNS": "4",
    }
    with running_platform(tmp_path_factory.mktemp("dashboard"), env) as running:
        yield running


@pytest.fixture
def context(chromium_browser: Browser, platform: RunningPlatform) -> Iterator[BrowserContext]:
    with browser_context(chromium_browser, platform.base_url) as opened:
        yield opened


def signed_in(context: BrowserContext, token: str) -> Page:
    """A page of the dashboard with a session opened from an API token, on the agents screen."""
    answer = context.request.post("/api/auth/session", headers={"Authorization": f"Bearer {token}"})
    assert answer.status == 204, answer.text()
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    return page


def create_agent(page: Page, name: str, *, system_prompt: str = "Be brief.") -> None:
    page.goto("/#/")
    page.get_by_role("button", name=re.compile(r"New agent|Create your first agent")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_label("Description").fill(f"{name} keeps notes for the team")
    dialog.get_by_label("System prompt").fill(system_prompt)
    dialog.get_by_role("button", name="Create agent").click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def send_task(page: Page, task: str) -> None:
    page.get_by_label("Task").fill(task)
    page.get_by_role("button", name="Run task").click()


def run_card(page: Page) -> Locator:
    return page.locator("article.run")


def test_the_login_link_signs_in_and_shows_the_empty_agents_screen(
    chromium_browser: Browser, platform: RunningPlatform
) -> None:
    link = platform.cli("login-url", "--user", "newcomer")
    with browser_context(chromium_browser, platform.base_url) as context:
        page = context.new_page()
        page.goto(link)
        expect(page.get_by_role("heading", name="No agents yet")).to_be_visible()
        expect(page.locator(".user-name")).to_have_text("newcomer")
        screenshot(page, "agents-empty")

        # Signed in already: the stale link is a notice over the agents screen.
        page.goto(link)
        expect(page.locator(".notice-error")).to_contain_text("login link was used already")
        expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()

    with browser_context(chromium_browser, platform.base_url) as stranger:
        page = stranger.new_page()
        page.goto(link)
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text("This login link was used already or has expired.")).to_be_visible()
        assert page.url == f"{platform.base_url}/"


def test_an_api_token_signs_in_and_signing_out_returns_to_sign_in(
    context: BrowserContext, platform: RunningPlatform
) -> None:
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "sign-in")

    page.get_by_label("API token").fill("ap_not-a-real-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="not valid")).to_be_visible()

    page.get_by_label("API token").fill(platform.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    expect(page.locator(".user-name")).to_have_text("alice")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_task_streams_its_text_and_tool_calls_with_usage_and_cost(
    context: BrowserContext, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    script = messages_api.add_script(
        [
            Reply(
                [
                    Text("I'll write the release notes first.", chunks=6),
                    ToolUse(
                        EDITOR,
                        {
                            "command": "create",
                            "path": "release-notes.md",
                            "file_text": "# 1.4.0\n\n- Faster workspace sync\n",
                        },
                    ),
                ],
                event_interval=0.02,
            ),
            Reply([ToolUse("bash", {"command": "wc -l release-notes.md && seq 1 400"})]),
            Reply(
                [Text("Done: release-notes.md lists the 1.4.0 changes.", chunks=5)],
                usage={"input_tokens": 1200, "output_tokens": 180},
                event_interval=0.02,
            ),
        ]
    )
    page = signed_in(context, platform.token)
    create_agent(page, "Release scribe")
    expect(page.get_by_role("heading", name="No runs yet")).to_be_visible()
    expect(page).to_have_title("Release scribe · AI Agent Platform")

    send_task(page, f"Write the release notes for 1.4.0 {script}")
    run = run_card(page)
    expect(run.locator(".answer-text").first).to_have_text("I'll write the release notes first.")
    tools = run.locator("details.tool-call")
    expect(tools).to_have_count(2)
    expect(tools.nth(0).locator(".tool-name")).to_have_text(EDITOR)
    expect(tools.nth(0).locator(".tool-brief")).to_have_text("create release-notes.md")
    expect(tools.nth(1).locator(".tool-brief")).to_have_text("wc -l release-notes.md && seq 1 400")
    expect(run.locator(".answer-text").last).to_have_text(
        "Done: release-notes.md lists the 1.4.0 changes."
    )
    expect(run.locator(".run-status")).to_have_text("Succeeded")

    # Long output is cut to a preview until asked for.
    output = tools.nth(1).locator(".tool-output")
    expect(output).not_to_contain_text("\n400")
    tools.nth(1).get_by_role("button", name=re.compile(r"Show all")).click()
    expect(output).to_contain_text("\n400")
    tools.nth(0).locator("summary").click()
    expect(tools.nth(0).locator(".tool-body")).to_be_hidden()

    expect(run.get_by_label("Tokens used")).to_contain_text(re.compile(r"[1-9][\d,]* tokens"))
    expect(run.get_by_label("Cost")).to_have_text(re.compile(r"^\$\d+\.\d{2,4}$"))
    expect(run.get_by_label("Elapsed time")).to_have_text(re.compile(r"\d+s"))
    expect(run.get_by_role("button", name="Cancel run")).to_be_hidden()

    files = page.locator("section.files")
    expect(files.locator(".file-row")).to_have_count(1)
    files.get_by_role("button", name="release-notes.md").click()
    expect(page.get_by_role("dialog").locator(".file-content")).to_have_text(
        "# 1.4.0\n\n- Faster workspace sync\n"
    )
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    # The run replayed on a fresh load, as a returning user finds it.
    address = page.url
    page.goto("about:blank")
    page.goto(address)
    expect(run.locator(".run-status")).to_have_text("Succeeded")
    expect(tools).to_have_count(2)
    screenshot(page, "workspace", full_page=True)
    page.emulate_media(color_scheme="dark")
    screenshot(page, "workspace-dark", full_page=True)
    page.emulate_media(color_scheme="light")
    # On a phone the side panels go below the run.
    page.set_viewport_size({"width": 420, "height": 900})
    page.get_by_role("heading", name="Release scribe", level=1).scroll_into_view_if_needed()
    run_box, files_box = run.bounding_box(), page.locator("section.files").bounding_box()
    assert run_box is not None
    assert files_box is not None
    assert files_box["y"] > run_box["y"] + run_box["height"]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    screenshot(page, "workspace-phone")
    page.set_viewport_size({"width": 1360, "height": 900})

    page.goto("/#/")
    card = page.locator(".agent-card", has_text="Release scribe")
    expect(card.locator(".badge")).to_have_text("Succeeded")
    screenshot(page, "agents")


def slow_reply(text: str = "Let me think about that carefully.") -> Reply:
    """A reply Claude takes long to start: the run stays running until it is cancelled."""
    return Reply([Text(text)], first_event_delay=60)


def test_a_running_run_is_cancelled_and_the_history_survives_a_reload(
    context: BrowserContext, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    quick = messages_api.add_script(
        [
            Reply([Text("Listing the files."), ToolUse("bash", {"command": "ls -a"})]),
            Reply([Text("The workspace is empty.")]),
        ]
    )
    slow = messages_api.add_script([slow_reply()])
    page = signed_in(context, platform.token)
    create_agent(page, "Janitor")

    send_task(page, f"What is in the workspace? {quick}")
    expect(run_card(page).locator(".run-status")).to_have_text("Succeeded")

    # From the keyboard alone: Ctrl + Enter sends.
    page.get_by_label("Task").fill(f"Think for a long time {slow}")
    page.get_by_label("Task").press("Control+Enter")
    run = run_card(page)
    expect(run.locator(".run-status")).to_have_text("Running")
    expect(run.locator(".connection")).to_have_text("Live")
    expect(page.locator(".history-item").first.locator(".badge")).to_have_text("Running")
    run.get_by_role("button", name="Cancel run").click()
    expect(run.locator(".run-status")).to_have_text("Cancelled")
    expect(run.get_by_role("button", name="Cancel run")).to_be_hidden()

    page.reload()
    history = page.locator(".history-item")
    expect(history).to_have_count(2)
    expect(history.nth(0).locator(".badge")).to_have_text("Cancelled")
    expect(history.nth(1).locator(".badge")).to_have_text("Succeeded")
    expect(run_card(page).locator(".run-status")).to_have_text("Cancelled")

    history.nth(1).click()
    replay = run_card(page)
    expect(replay.locator(".task-text")).to_have_text(f"What is in the workspace? {quick}")
    expect(replay.locator(".answer-text")).to_have_text(
        ["Listing the files.", "The workspace is empty."]
    )
    expect(replay.locator("details.tool-call .tool-brief")).to_have_text("ls -a")
    expect(replay.locator(".tool-output")).to_contain_text(".")
    expect(history.nth(1)).to_have_attribute("aria-current", "true")
    screenshot(page, "history")


def test_a_dropped_connection_resumes_where_it_left_off_without_duplicates(
    chromium_browser: Browser, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    # Long enough (about 8 s) that the drop always comes in the middle of the answer.
    words = [f"word{n:02d}" for n in range(80)]
    script = messages_api.add_script(
        [
            Reply([Text("Step one."), ToolUse("bash", {"command": "echo checkpoint"})]),
            Reply([Text(" ".join(words), chunks=80)], event_interval=0.1),
        ]
    )
    port = int(platform.base_url.rsplit(":", 1)[1])
    with (
        CuttableProxy(port) as network,
        browser_context(chromium_browser, network.base_url) as context,
    ):
        page = signed_in(context, platform.token)
        create_agent(page, "Narrator")

        send_task(page, f"Tell a long story {script}")
        run = run_card(page)
        expect(run.locator(".answer-text").last).to_contain_text("word05")
        # The network fails: the open stream drops and nothing new gets through for a while.
        context.set_offline(True)
        assert network.cut() >= 1
        expect(run.locator(".connection")).to_have_text("Reconnecting…")
        screenshot(page, "reconnecting")
        context.set_offline(False)

        expect(run.locator(".run-status")).to_have_text("Succeeded")
        expect(run.locator(".answer-text")).to_have_text(["Step one.", " ".join(words)])
        expect(run.locator("details.tool-call")).to_have_count(1)
        expect(run.locator(".tool-output")).to_have_text("checkpoint")


def test_api_errors_are_shown_in_words(
    context: BrowserContext, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    page = signed_in(context, platform.token)

    page.get_by_role("button", name=re.compile(r"New agent|Create your first agent")).first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill("   ")
    dialog.get_by_role("button", name="Create agent").click()
    expect(dialog.get_by_role("alert")).to_contain_text("the request is not valid: body.name")
    dialog.get_by_role("button", name="Cancel").click()

    create_agent(page, "Busy bee")
    send_task(page, f"Take your time {messages_api.add_script([slow_reply()])}")
    expect(run_card(page).locator(".run-status")).to_have_text("Running")

    page.get_by_role("button", name="Delete").click()
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("cannot be undone")
    confirm.get_by_role("button", name="Delete").click()
    expect(confirm.get_by_role("alert")).to_have_text(
        "the agent has queued or running runs; cancel them first"
    )
    screenshot(page, "error-delete")
    confirm.get_by_role("button", name="Cancel").click()

    page.locator("#upload-file").set_input_files(
        files=[FilePayload(name="notes.md", mimeType="text/markdown", buffer=b"# notes\n")]
    )
    expect(page.locator(".notice-error")).to_contain_text(
        "notes.md was not uploaded: the agent has a queued or running run"
    )

    run_card(page).get_by_role("button", name="Cancel run").click()
    expect(run_card(page).locator(".run-status")).to_have_text("Cancelled")

    page.goto("/#/agents/agt_missing")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    expect(page.get_by_text("you have no agent agt_missing")).to_be_visible()


def test_files_are_uploaded_viewed_and_downloaded_and_agents_edited_and_deleted(
    context: BrowserContext, platform: RunningPlatform
) -> None:
    page = signed_in(context, platform.token)
    create_agent(page, "Archivist")
    files = page.locator("section.files")
    expect(files).to_contain_text("No files yet")

    page.locator("#upload-file").set_input_files(
        files=[FilePayload(name="brief.md", mimeType="text/markdown", buffer=b"# Brief\nShip.\n")]
    )
    expect(files.locator(".file-row")).to_have_count(1)
    files.get_by_role("button", name="brief.md").click()
    viewer = page.get_by_role("dialog")
    expect(viewer.locator(".file-content")).to_have_text("# Brief\nShip.\n")
    with page.expect_download() as download:
        viewer.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "brief.md"
    assert Path(download.value.path()).read_bytes() == b"# Brief\nShip.\n"
    viewer.get_by_role("button", name="Close").click()

    page.get_by_role("button", name="Edit").click()
    form = page.get_by_role("dialog")
    expect(form.get_by_label("Name")).to_have_value("Archivist")
    screenshot(page, "agent-form")
    form.get_by_label("Name").fill("Chief archivist")
    form.get_by_label("Turns").fill("5")
    form.get_by_label("Turns").press("Enter")
    expect(page.get_by_role("heading", name="Chief archivist", level=1)).to_be_visible()
    expect(page.locator(".workspace-title")).to_contain_text("up to 5 turns")

    page.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    expect(page.locator(".agent-card", has_text="Chief archivist")).to_have_count(0)


def test_a_file_and_a_link_are_deleted_from_the_file_view(
    context: BrowserContext, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    command = (
        "echo hi > kept.txt && echo bye > old.txt && ln -s kept.txt alias"
        " && ln -s ../../../platform.db db_link"
    )
    script = messages_api.add_script(
        [Reply([ToolUse("bash", {"command": command})]), Reply([Text("Done.")])]
    )
    page = signed_in(context, platform.token)
    create_agent(page, "Tidier")
    send_task(page, f"{script} make files")
    expect(run_card(page).locator(".run-status")).to_have_text("Succeeded")
    expect(run_card(page).locator(".callout.warning")).to_contain_text(
        "db_link (a link to ../../../platform.db, outside the workspace)"
    )
    files = page.locator("section.files")
    expect(files.locator(".file-row")).to_have_count(3)
    expect(files.locator('.file-row[data-path="alias"]')).to_contain_text("→ kept.txt")

    files.get_by_role("button", name="old.txt").click()
    expect(page.get_by_role("dialog").locator(".file-content")).to_have_text("bye\n")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete old.txt?").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator(".notice-success")).to_contain_text("Deleted old.txt")
    expect(files.locator(".file-row")).to_have_count(2)

    files.get_by_role("button", name="alias").click()
    expect(page.get_by_role("dialog")).to_contain_text("A link to kept.txt")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.get_by_role("dialog", name="Delete alias?").get_by_role("button", name="Delete").click()
    expect(files.locator(".file-row")).to_have_count(1)
    expect(files.locator(".file-row")).to_have_attribute("data-path", "kept.txt")


def test_a_damaged_workspace_is_reset_from_the_files_panel(
    context: BrowserContext, platform: RunningPlatform
) -> None:
    page = signed_in(context, platform.token)
    create_agent(page, "Unlucky")
    agent_id = page.url.rsplit("/", 1)[-1]
    stored = platform.data_dir / "workspaces" / f"{agent_id}.tar.gz"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"not a gzipped tar")
    page.reload()
    files = page.locator("section.files")
    expect(files).to_contain_text("workspace archive is damaged")

    files.get_by_role("button", name="Reset workspace").click()
    page.get_by_role("dialog", name="Reset the workspace?").get_by_role(
        "button", name="Reset"
    ).click()

    expect(files).to_contain_text("No files yet")
    assert not stored.exists()


def test_the_dashboard_reconnects_by_itself_after_the_platform_restarts(
    context: BrowserContext, platform: RunningPlatform, messages_api: MessagesApiServer
) -> None:
    page = signed_in(context, platform.token)
    create_agent(page, "Night shift")
    marker = messages_api.add_script([slow_reply()])
    send_task(page, f"Work through the night {marker}")
    run = run_card(page)
    expect(run.locator(".connection")).to_have_text("Live")
    # The agent is waiting for Claude, so its runner is up and recorded. (A crash in the moment
    # before the record is written fails the run as lost; its runner, refused, ends by itself.)
    wait_for(lambda: bool(messages_api.requests(marker)), "the agent's first call to Claude")

    # A crash, not a graceful stop: a stopping platform cancels its local runs, while after a
    # crash the runner outlives its platform and the restarted one adopts it. The page follows
    # the same run again without being reloaded, and learns how it ends.
    platform.kill()
    platform.start()

    expect(run.locator(".connection")).to_have_text("Live")
    expect(run.locator(".run-status")).to_have_text("Running")
    run.get_by_role("button", name="Cancel run").click()
    expect(run.locator(".run-status")).to_have_text("Cancelled")
    expect(page.locator(".history-item").first.locator(".badge")).to_have_text("Cancelled")
    expect(page.get_by_role("button", name="Run task")).to_be_enabled()
    screenshot(page, "after-restart")
