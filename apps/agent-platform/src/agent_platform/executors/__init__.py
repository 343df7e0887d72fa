"""Where runs execute: `make_executor` picks the executor the settings name."""

from __future__ import annotations

from agent_platform.executors.base import (
    Executor,
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)
from agent_platform.settings import Settings


class ExecutorNotAvailable(Exception):
    """The settings select an executor this build cannot run."""


def make_executor(settings: Settings, on_exit: OnExit) -> Executor:
    if settings.executor == "local":
        from agent_platform.executors.local import LocalExecutor

        return LocalExecutor(
            command=settings.runner_command,
            data_dir=settings.data_dir,
            on_exit=on_exit,
            grace_seconds=settings.cancel_grace_seconds,
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
    raise ExecutorNotAvailable(
        f"AGENT_PLATFORM_EXECUTOR={settings.executor} is not available in this build; "
        "use AGENT_PLATFORM_EXECUTOR=local"
    )


__all__ = [
    "Executor",
    "ExecutorError",
    "ExecutorNotAvailable",
    "Launch",
    "OnExit",
    "Reconciliation",
    "SandboxExit",
    "make_executor",
]
