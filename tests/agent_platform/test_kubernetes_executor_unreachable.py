"""The Kubernetes-based executors (Jobs, warm-pool claims) without a cluster to reach: errors
that say what to configure. Their behaviour against a cluster is in tests/cluster/ and the
executor contract suite."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from agent_platform.executors.agent_sandbox import AgentSandboxExecutor
from agent_platform.executors.base import Executor, ExecutorError, Launch, SandboxExit
from agent_platform.executors.kubernetes import KubernetesExecutor


def launch() -> Launch:
    return Launch(
        run_id="r1a2b3",
        agent_id="agent-7",
        owner_id="ada@example.com",
        run_token="run-token-value-9f8e7d",
        timeout_seconds=300,
        platform_url="http://127.0.0.1:8000",
    )


async def ignore_exit(_: SandboxExit) -> None:
    return None


@pytest.fixture(params=["kubernetes", "agent-sandbox"])
def executor_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


def executor_for(kind: str, kubeconfig: Path) -> Executor:
    if kind == "agent-sandbox":
        return AgentSandboxExecutor(
            kubeconfig=kubeconfig,
            namespace="agent-runs",
            warm_pool="agent-runner",
            on_exit=ignore_exit,
        )
    return KubernetesExecutor(
        kubeconfig=kubeconfig,
        namespace="agent-runs",
        template_name="agent-runner",
        on_exit=ignore_exit,
    )


async def test_missing_kubeconfig_is_a_clear_executor_error(
    executor_kind: str, tmp_path: Path
) -> None:
    executor = executor_for(executor_kind, tmp_path / "absent.kubeconfig")
    try:
        with pytest.raises(ExecutorError, match="AGENT_PLATFORM_KUBECONFIG"):
            await executor.start(launch())
    finally:
        await executor.aclose()


async def test_unreachable_api_server_is_a_clear_executor_error(
    executor_kind: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the executor dials it
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    executor = executor_for(executor_kind, kubeconfig)
    try:
        with pytest.raises(ExecutorError, match="could not be reached"):
            await executor.reconcile(["run-1"])
        with pytest.raises(ExecutorError, match="could not be reached"):
            await executor.start(launch())
    finally:
        await executor.aclose()
