"""Where runs execute: `make_executor` picks the executor the settings name."""

from __future__ import annotations

from typing import assert_never

from agent_platform.executors.base import (
    Executor,
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)
from agent_platform.settings import Settings


def make_executor(settings: Settings, on_exit: OnExit) -> Executor:
    if settings.executor == "local":
        from agent_platform.executors.local import LocalExecutor

        return LocalExecutor(
            command=settings.runner_command,
            data_dir=settings.data_dir,
            on_exit=on_exit,
            grace_seconds=settings.cancel_grace_seconds,
            tool_sandbox=settings.local_sandbox,
        )
    if settings.executor == "kubernetes":
        from agent_platform.executors.kubernetes import KubernetesExecutor

        return KubernetesExecutor(
            kubeconfig=settings.kubeconfig,
            namespace=settings.runs_namespace,
            template_name=settings.runner_template,
            on_exit=on_exit,
        )
    if settings.executor == "agent-sandbox":
        from agent_platform.executors.agent_sandbox import AgentSandboxExecutor

        return AgentSandboxExecutor(
            kubeconfig=settings.kubeconfig,
            namespace=settings.runs_namespace,
            warm_pool=settings.warm_pool,
            on_exit=on_exit,
        )
    # Settings reject any other value, so mypy proves every executor has a branch here.
    assert_never(settings.executor)


__all__ = [
    "Executor",
    "ExecutorError",
    "Launch",
    "OnExit",
    "Reconciliation",
    "SandboxExit",
    "make_executor",
]
