"""Runs on pre-warmed sandboxes: one SandboxClaim per run on the `agent-runner` SandboxWarmPool.

GKE's Agent Sandbox add-on (the open-source agent-sandbox controller) keeps a pool of sandboxes
made from the `agent-runner` SandboxTemplate that Argo CD syncs from git, already scheduled and
running. A run claims one; the controller binds a warm sandbox to the claim at once, or starts a
fresh one from the template when the pool is empty. The run's end (the runner exits, its
deadline passes, a cancel) releases the claim, and the controller deletes the sandbox: no
sandbox ever serves a second run.

A warm pod starts before its run exists, so the run id and token cannot be in its spec. Its
runner listens on the pod's handover port; once the claim is bound, this executor posts the run
id and token there, exactly once, and marks the claim handed over. Only the API's pods may reach
that port (the runs' NetworkPolicies), and the token never enters a pod spec, a Secret or a log.

The project's own Python client (`k8s-agent-sandbox`) is not used: its async flavour pins
kubernetes-asyncio below the version this platform runs, it pulls in the synchronous client and
requests besides, and it follows one claim per call, where this executor follows every run's
claim with one watch, as the Job executor does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import httpx
from agent_runner.protocol import HANDOVER_PATH, HANDOVER_RUN_ID, HANDOVER_RUN_TOKEN, Outcome
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent_platform.executors.base import (
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)
from agent_platform.executors.job_spec import (
    RUN_ANNOTATION,
    SELECTOR,
    job_name,
    run_id_of,
    run_labels,
)
from agent_platform.executors.job_status import pod_failure
from agent_platform.executors.kubernetes import load_api_client, reaching_the_cluster

log = logging.getLogger(__name__)

GROUP: Final = "extensions.agents.x-k8s.io"
VERSION: Final = "v1beta1"
PLURAL: Final = "sandboxclaims"
# Set on a claim once its runner took the run: a claim without it after a restart holds a
# sandbox still waiting for a token the restarted platform no longer has.
HANDED_OVER_ANNOTATION: Final = "agent-platform.dev/handed-over"
# The controller labels a claimed sandbox's pod with its claim's uid.
CLAIM_UID_LABEL: Final = "agents.x-k8s.io/claim-uid"
HANDOVER_PORT_NAME: Final = "handover"
# The run's own limit, so that a timeout can name it; the claim's deadline adds a margin.
TIME_LIMIT_ANNOTATION: Final = "agent-platform.dev/time-limit-seconds"
# Why a claim is no longer Ready when its deadline (lifecycle.shutdownTime) has passed.
EXPIRED_REASONS: Final = frozenset({"ClaimExpired", "SandboxExpired"})
_WATCH_SECONDS = 240
_RETRY_SECONDS = 2.0
# How often to try a runner whose port is not open yet: a cold-started pod is Ready as soon as
# its container starts, a few hundred milliseconds before the runner listens.
_CONNECT_INTERVAL = 0.05


# --- The functional core: plain Kubernetes JSON in, plain JSON or verdicts out. -------------


def claim_name(run_id: str) -> str:
    """The run's claim name: the same for every attempt, so a retry finds the first claim."""
    return job_name(run_id)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_claim(
    launch: Launch,
    *,
    warm_pool: str,
    now: datetime,
    deadline_margin_seconds: int,
    ttl_seconds_after_finished: int,
) -> dict[str, Any]:
    """The SandboxClaim of one run: the pool to take a sandbox from, the run's labels and
    deadline. Nothing secret: the token goes to the runner by handover, never into the claim."""
    deadline = now + timedelta(seconds=launch.timeout_seconds + deadline_margin_seconds)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SandboxClaim",
        "metadata": {
            "name": claim_name(launch.run_id),
            "labels": run_labels(launch),
            "annotations": {
                RUN_ANNOTATION: launch.run_id,
                TIME_LIMIT_ANNOTATION: str(launch.timeout_seconds),
            },
        },
        "spec": {
            "warmPoolRef": {"name": warm_pool},
            "lifecycle": {
                # The runner stops itself at the agent's limit and reports `timed_out`; the
                # margin lets it do so before the controller deletes its sandbox.
                "shutdownTime": _timestamp(deadline),
                # The claim stays, marked expired, so the watch can tell a timeout from a loss.
                "shutdownPolicy": "Retain",
                # Should the platform be away when a run ends, the controller removes its claim.
                "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            },
        },
    }


def _condition(claim: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for condition in (claim.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return None


def claim_ready(claim: dict[str, Any]) -> bool:
    ready = _condition(claim, "Ready")
    return ready is not None and ready.get("status") == "True"


def handed_over(claim: dict[str, Any]) -> bool:
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    return annotations.get(HANDED_OVER_ANNOTATION) == "true"


def claim_verdict(claim: dict[str, Any]) -> tuple[Outcome, str] | None:
    """How a run's sandbox ended, from its claim, or None while it has not."""
    ready = _condition(claim, "Ready") or {}
    if ready.get("status") != "True" and ready.get("reason") in EXPIRED_REASONS:
        annotations = (claim.get("metadata") or {}).get("annotations") or {}
        limit = annotations.get(TIME_LIMIT_ANNOTATION, "?")
        deadline = ((claim.get("spec") or {}).get("lifecycle") or {}).get("shutdownTime")
        return (
            Outcome.TIMED_OUT,
            f"the run exceeded its time limit ({limit}s; its sandbox's deadline was {deadline})",
        )
    finished = _condition(claim, "Finished")
    if finished is None or finished.get("status") != "True":
        return None
    if finished.get("reason") == "PodSucceeded":
        return Outcome.FAILED, "the runner exited without reporting a result"
    return Outcome.FAILED, "the sandbox failed: its pod ended in failure"


def handover_address(pod: dict[str, Any]) -> tuple[str, int] | None:
    """The pod's IP and its runner's handover port, or None if the pod has neither yet."""
    ip = (pod.get("status") or {}).get("podIP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == HANDOVER_PORT_NAME and ip:
                return str(ip), int(port["containerPort"])
    return None


# --- The imperative shell: the cluster, its watch, the handover and the platform's callback. --


@dataclass
class _Tracked:
    """What the executor knows about one run's claim while it watches."""

    reported: bool = False
    # Set before this executor releases the claim itself, so its deletion is not news.
    releasing: bool = False
    bound: asyncio.Event = field(default_factory=asyncio.Event)
    handover: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Cluster:
    api: client.ApiClient
    core: client.CoreV1Api
    custom: client.CustomObjectsApi


def _api_error(action: str, error: ApiException) -> ExecutorError:
    return ExecutorError(f"{action} failed: {error.status} {error.reason}")


class AgentSandboxExecutor:
    """One SandboxClaim per run on the runs namespace's warm pool, watched until it ends."""

    def __init__(
        self,
        *,
        kubeconfig: Path | None,
        namespace: str,
        warm_pool: str,
        on_exit: OnExit,
        deadline_margin_seconds: int = 30,
        ttl_seconds_after_finished: int = 600,
        bind_timeout_seconds: float = 600.0,
        listen_timeout_seconds: float = 30.0,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._warm_pool = warm_pool
        self._on_exit = on_exit
        self._margin = deadline_margin_seconds
        self._ttl = ttl_seconds_after_finished
        self._bind_timeout = bind_timeout_seconds
        self._listen_timeout = listen_timeout_seconds
        self._cluster: _Cluster | None = None
        self._connecting = asyncio.Lock()
        self._runs: dict[str, _Tracked] = {}
        self._watches: list[asyncio.Task[None]] = []
        self._http = httpx.AsyncClient(timeout=5.0)

    def _claims(self, method: str) -> Any:
        """A CustomObjectsApi call bound to the runs namespace's SandboxClaims."""
        return partial(
            getattr(self._require().custom, method), GROUP, VERSION, self._namespace, PLURAL
        )

    def _require(self) -> _Cluster:
        if self._cluster is None:
            raise ExecutorError("the agent-sandbox executor is not connected yet")
        return self._cluster

    async def _connect(self) -> _Cluster:
        async with self._connecting:
            if self._cluster is None:
                api = await load_api_client(self._kubeconfig)
                self._cluster = _Cluster(api, client.CoreV1Api(api), client.CustomObjectsApi(api))
                self._watches = [asyncio.create_task(self._watch())]
            return self._cluster

    async def start(self, launch: Launch) -> None:
        with reaching_the_cluster():
            await self._connect()
            await self._start(launch)

    async def _start(self, launch: Launch) -> None:
        name = claim_name(launch.run_id)
        tracked = self._runs.setdefault(launch.run_id, _Tracked())
        manifest = build_claim(
            launch,
            warm_pool=self._warm_pool,
            now=datetime.now(UTC),
            deadline_margin_seconds=self._margin,
            ttl_seconds_after_finished=self._ttl,
        )
        try:
            await self._claims("create_namespaced_custom_object")(manifest)
        except ApiException as error:
            if error.status != 409:
                self._runs.pop(launch.run_id, None)
                if error.status == 404:
                    raise ExecutorError(
                        f"SandboxClaims are not served in namespace {self._namespace}: is the "
                        "GKE Agent Sandbox add-on enabled?"
                    ) from error
                raise _api_error(f"creating SandboxClaim {name}", error) from error
            existing = await self._read_claim(name)
            if existing is None or run_id_of(existing) != launch.run_id:
                raise ExecutorError(
                    f"SandboxClaim {name} exists for another run; delete it or rename the run"
                ) from error
            if handed_over(existing):
                return  # a retried start: the first attempt already handed the run over
        if tracked.handover is None:
            tracked.handover = asyncio.create_task(self._hand_over(launch, tracked))
        log.info("claimed a sandbox of pool %s for run %s", self._warm_pool, launch.run_id)

    async def _hand_over(self, launch: Launch, tracked: _Tracked) -> None:
        """Wait for the claim to be bound, give its runner the run, mark the claim."""
        name = claim_name(launch.run_id)
        try:
            async with asyncio.timeout(self._bind_timeout):
                await tracked.bound.wait()
            sandbox = await self._deliver(name, launch)
            await self._claims("patch_namespaced_custom_object")(
                name,
                {"metadata": {"annotations": {HANDED_OVER_ANNOTATION: "true"}}},
                _content_type="application/merge-patch+json",
            )
            log.info("handed run %s to sandbox %s", launch.run_id, sandbox)
        except TimeoutError:
            minutes = self._bind_timeout / 60
            await self._fail(launch.run_id, f"no sandbox became ready for {minutes:g} minutes")
        except ExecutorError as error:
            await self._fail(launch.run_id, str(error))
        except (ApiException, OSError, httpx.HTTPError) as error:
            await self._fail(launch.run_id, f"the handover to the sandbox failed: {error}")

    async def _deliver(self, name: str, launch: Launch) -> str:
        """Post the run to the runner of the claim's sandbox; the sandbox's name.

        A cold-started pod is Ready as soon as its container starts, a moment before the runner
        listens, so a refused connection is tried again for a little while.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._listen_timeout
        body = {HANDOVER_RUN_ID: launch.run_id, HANDOVER_RUN_TOKEN: launch.run_token}
        while True:
            claim = await self._read_claim(name)
            if claim is None:
                raise ExecutorError("the run's SandboxClaim was released before the handover")
            sandbox = _sandbox_name(claim)
            address = await self._runner_address(claim, sandbox)
            if address is not None:
                host, port = address
                try:
                    answer = await self._http.post(
                        f"http://{host}:{port}{HANDOVER_PATH}", json=body
                    )
                except httpx.ConnectError:
                    pass
                else:
                    if answer.status_code != 202:
                        raise ExecutorError(
                            f"the runner of sandbox {sandbox} refused the handover "
                            f"({answer.status_code}); a sandbox takes exactly one run"
                        )
                    return sandbox
            if loop.time() > deadline:
                raise ExecutorError(
                    f"the runner of sandbox {sandbox} did not take the handover within "
                    f"{self._listen_timeout:g}s; is the SandboxTemplate the one in "
                    "apps/agent-runner/base?"
                )
            await asyncio.sleep(_CONNECT_INTERVAL)

    async def _runner_address(self, claim: dict[str, Any], sandbox: str) -> tuple[str, int] | None:
        """The bound sandbox's pod (named as the sandbox) and its handover port, once known."""
        if not sandbox:
            return None
        try:
            item = await self._require().core.read_namespaced_pod(sandbox, self._namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        pod: dict[str, Any] = self._require().api.sanitize_for_serialization(item)
        owner = ((pod.get("metadata") or {}).get("labels") or {}).get(CLAIM_UID_LABEL)
        if owner not in (None, claim["metadata"]["uid"]):
            # The controller labels the pod with its claim; another claim's pod never gets a run.
            raise ExecutorError(f"pod {sandbox} belongs to another SandboxClaim")
        return handover_address(pod)

    async def _read_claim(self, name: str) -> dict[str, Any] | None:
        try:
            claim: dict[str, Any] = await self._claims("get_namespaced_custom_object")(name)
        except ApiException as error:
            if error.status == 404:
                return None
            raise _api_error(f"reading SandboxClaim {name}", error) from error
        return claim

    async def _release(self, name: str) -> None:
        try:
            await self._claims("delete_namespaced_custom_object")(
                name, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise _api_error(f"releasing SandboxClaim {name}", error) from error

    async def _fail(self, run_id: str, reason: str) -> None:
        await self._release(claim_name(run_id))
        await self._report(run_id, Outcome.FAILED, reason)

    async def cancel(self, run_id: str) -> None:
        with reaching_the_cluster():
            await self._connect()
            tracked = self._runs.setdefault(run_id, _Tracked())
            tracked.releasing = True
            if tracked.handover is not None:
                tracked.handover.cancel()
            await self._release(claim_name(run_id))
        await self._report(run_id, Outcome.CANCELLED, "cancelled")

    async def reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        with reaching_the_cluster():
            await self._connect()
            return await self._reconcile(active_run_ids)

    async def _reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        try:
            listed = await self._claims("list_namespaced_custom_object")(label_selector=SELECTOR)
        except ApiException as error:
            raise _api_error("listing SandboxClaims", error) from error
        active = set(active_run_ids)
        found: set[str] = set()
        released: list[str] = []
        for claim in listed.get("items") or []:
            run_id = run_id_of(claim)
            name = claim["metadata"]["name"]
            if claim["metadata"].get("deletionTimestamp"):
                continue  # a claim being released is a sandbox already lost
            if run_id in active and handed_over(claim):
                found.add(run_id)
                continue
            # Another run's, or one whose runner never got its token: that token died with the
            # platform process that made it, so the sandbox can never serve the run.
            if run_id is not None:
                # The platform finishes lost runs itself; the claim's deletion is no news.
                self._runs.setdefault(run_id, _Tracked()).reported = True
            released.append(run_id or name)
            await self._release(name)
        lost = [run_id for run_id in active_run_ids if run_id not in found]
        if released or lost:
            log.info("reconciled: %d claims released, %d runs lost", len(released), len(lost))
        adopted = tuple(run_id for run_id in active_run_ids if run_id in found)
        orphans = tuple(r for r in released if r not in active)
        return Reconciliation(lost=tuple(lost), orphans_removed=orphans, adopted=adopted)

    async def aclose(self) -> None:
        tasks = [*self._watches, *(t.handover for t in self._runs.values() if t.handover)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()
        await self._http.aclose()
        if self._cluster is not None:
            await self._cluster.api.close()
            self._cluster = None

    async def _watch(self) -> None:
        """List, then watch from the list's version; start over whenever the watch ends."""
        while True:
            try:
                list_claims = self._claims("list_namespaced_custom_object")
                listed = await list_claims(label_selector=SELECTOR)
                for claim in listed.get("items") or []:
                    await self._on_claim("ADDED", claim)
                stream = watch.Watch().stream(
                    list_claims,
                    label_selector=SELECTOR,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=_WATCH_SECONDS,
                )
                async with stream:
                    async for event in stream:
                        await self._on_claim(event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("watch of sandbox claims ended; listing again", exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _report(self, run_id: str, outcome: Outcome, reason: str) -> None:
        tracked = self._runs.setdefault(run_id, _Tracked())
        if tracked.reported:
            return
        tracked.reported = True
        if tracked.handover is not None and tracked.handover is not asyncio.current_task():
            tracked.handover.cancel()
        log.info("run %s sandbox ended: %s (%s)", run_id, outcome, reason)
        await self._on_exit(SandboxExit(run_id, outcome, reason))

    async def _on_claim(self, kind: str, claim: dict[str, Any]) -> None:
        run_id = run_id_of(claim)
        if run_id is None:
            return
        if kind == "DELETED":
            if self._runs.get(run_id, _Tracked()).releasing:
                return  # cancelled: `cancel` reports it
            # Released by someone else than this executor (which reports first).
            await self._report(
                run_id, Outcome.FAILED, "the run's SandboxClaim was deleted before it ended"
            )
            self._runs.pop(run_id, None)
            return
        tracked = self._runs.get(run_id)
        if tracked is not None and claim_ready(claim):
            tracked.bound.set()
        verdict = claim_verdict(claim)
        if verdict is None or (tracked is not None and tracked.reported):
            return
        outcome, reason = verdict
        if outcome is Outcome.FAILED and reason.startswith("the sandbox failed"):
            reason = await self._pod_failure(claim) or reason
        await self._report(run_id, outcome, reason)
        # The run is over: give the sandbox back, so it is deleted and never serves another.
        await self._release(claim["metadata"]["name"])

    async def _pod_failure(self, claim: dict[str, Any]) -> str | None:
        sandbox = _sandbox_name(claim)
        if not sandbox:
            return None
        try:
            item = await self._require().core.read_namespaced_pod(sandbox, self._namespace)
        except ApiException:
            return None  # the pod is gone already: the claim's own words will do
        return pod_failure(self._require().api.sanitize_for_serialization(item))


def _sandbox_name(claim: dict[str, Any]) -> str:
    return str(((claim.get("status") or {}).get("sandbox") or {}).get("name") or "")
