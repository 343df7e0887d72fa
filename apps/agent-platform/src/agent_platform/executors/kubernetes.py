"""Runs as Kubernetes Jobs made from the `agent-runner` PodTemplate that Argo CD syncs from git.

What a run's Job and Secret hold is `job_spec`'s; how a finished Job ended is `job_status`'s.
This module is the shell around them: the cluster, its watches and the platform's callback.

The client is kubernetes-asyncio: the official client's generated API on aiohttp, so no call
blocks the platform's event loop, watches are async iterators, and both in-cluster config (with
the bound ServiceAccount token refreshed as it rotates) and kubeconfig files load through it.

The run token travels in a per-run Secret mounted into the runner container only, never in the
pod spec. The Secret is created after its Job and owned by it, so the garbage collector removes
it with the Job, and the platform's Role needs no right to read Secrets at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from agent_runner.protocol import Outcome
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from agent_platform.executors.base import (
    ExecutorError,
    Launch,
    OnExit,
    Reconciliation,
    SandboxExit,
)
from agent_platform.executors.job_spec import (
    SELECTOR,
    build_job,
    build_token_secret,
    job_name,
    run_id_of,
)
from agent_platform.executors.job_status import (
    job_finished,
    job_verdict,
    pod_stall,
    unschedulable_since,
)

log = logging.getLogger(__name__)

JOB_NAME_LABEL: Final = "batch.kubernetes.io/job-name"
_WATCH_SECONDS = 240
_RETRY_SECONDS = 2.0


async def load_api_client(kubeconfig: Path | None) -> client.ApiClient:
    """A client from the kubeconfig file when given (tests, laptops), else in-cluster config."""
    configuration = client.Configuration()
    if kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(kubeconfig), client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return client.ApiClient(configuration)


def _as_body(manifest: dict[str, Any]) -> Any:
    """The client sends plain JSON as is; its stubs only name the generated model classes."""
    return manifest


@contextlib.contextmanager
def reaching_the_cluster() -> Iterator[None]:
    """Failures to reach the cluster at all, as ExecutorErrors that say what to check."""
    try:
        yield
    except (config.ConfigException, FileNotFoundError) as error:
        raise ExecutorError(
            f"no usable Kubernetes configuration ({error}); run in a pod with a ServiceAccount "
            "or set AGENT_PLATFORM_KUBECONFIG"
        ) from error
    except (OSError, TimeoutError) as error:
        # aiohttp's connection errors are OSErrors.
        raise ExecutorError(f"the Kubernetes API could not be reached: {error}") from error


def _api_error(action: str, error: ApiException) -> ExecutorError:
    return ExecutorError(f"{action} failed: {error.status} {error.reason}")


@dataclass
class _Tracked:
    """What the executor knows about one run's Job while it watches."""

    reported: bool = False
    unschedulable_timer: asyncio.Task[None] | None = None


@dataclass(frozen=True)
class _Cluster:
    api: client.ApiClient
    core: client.CoreV1Api
    batch: client.BatchV1Api


class KubernetesExecutor:
    """One Job per run in the runs namespace, watched until it ends.

    The connection is opened on first use: loading a kubeconfig is asynchronous, and the platform
    builds its executor before its event loop serves anything.
    """

    def __init__(
        self,
        *,
        kubeconfig: Path | None,
        namespace: str,
        template_name: str,
        on_exit: OnExit,
        ttl_seconds_after_finished: int = 3600,
        deadline_margin_seconds: int = 30,
        unschedulable_timeout_seconds: float = 600.0,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._namespace = namespace
        self._template_name = template_name
        self._on_exit = on_exit
        self._ttl = ttl_seconds_after_finished
        self._margin = deadline_margin_seconds
        self._unschedulable_timeout = unschedulable_timeout_seconds
        self._cluster: _Cluster | None = None
        self._connecting = asyncio.Lock()
        self._runs: dict[str, _Tracked] = {}
        self._watches: list[asyncio.Task[None]] = []

    async def _connect(self) -> _Cluster:
        async with self._connecting:
            if self._cluster is None:
                api = await load_api_client(self._kubeconfig)
                self._cluster = _Cluster(api, client.CoreV1Api(api), client.BatchV1Api(api))
                self._watches = [
                    asyncio.create_task(
                        self._watch(self._cluster.batch.list_namespaced_job, self._on_job)
                    ),
                    asyncio.create_task(
                        self._watch(self._cluster.core.list_namespaced_pod, self._on_pod)
                    ),
                ]
            return self._cluster

    @property
    def _api(self) -> client.ApiClient:
        return self._require().api

    @property
    def _core(self) -> client.CoreV1Api:
        return self._require().core

    @property
    def _batch(self) -> client.BatchV1Api:
        return self._require().batch

    def _require(self) -> _Cluster:
        if self._cluster is None:
            raise ExecutorError("the Kubernetes executor is not connected yet")
        return self._cluster

    async def start(self, launch: Launch) -> None:
        with reaching_the_cluster():
            await self._start(launch)

    async def cancel(self, run_id: str) -> None:
        with reaching_the_cluster():
            await self._connect()
            await self._delete_job(job_name(run_id))
        # Deleting a Job does not fail it, so the watch cannot report another end meanwhile.
        await self._report(run_id, Outcome.CANCELLED, "cancelled")

    async def reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        with reaching_the_cluster():
            return await self._reconcile(active_run_ids)

    async def _start(self, launch: Launch) -> None:
        await self._connect()
        name = job_name(launch.run_id)
        try:
            template = await self._core.read_namespaced_pod_template(
                self._template_name, self._namespace
            )
        except ApiException as error:
            if error.status == 404:
                raise ExecutorError(
                    f"PodTemplate {self._template_name} not found in namespace "
                    f"{self._namespace}: is the agent-runner base synced?"
                ) from error
            raise _api_error(f"reading PodTemplate {self._template_name}", error) from error
        manifest = build_job(
            self._api.sanitize_for_serialization(template),
            launch,
            template_name=self._template_name,
            ttl_seconds_after_finished=self._ttl,
            deadline_margin_seconds=self._margin,
        )
        job = await self._create_job(name, manifest, launch.run_id)
        try:
            await self._core.create_namespaced_secret(
                self._namespace, _as_body(build_token_secret(launch, job))
            )
        except ApiException as error:
            if error.status == 409:
                return  # a retried start: the first attempt already stored the run's token
            await self._delete_job(name)
            raise _api_error(f"storing the run token of {name}", error) from error
        self._runs.setdefault(launch.run_id, _Tracked())
        log.info("started Job %s for run %s", name, launch.run_id)

    async def _create_job(self, name: str, manifest: dict[str, Any], run_id: str) -> dict[str, Any]:
        try:
            created = await self._batch.create_namespaced_job(self._namespace, _as_body(manifest))
        except ApiException as error:
            if error.status != 409:
                raise _api_error(f"creating Job {name}", error) from error
            try:
                created = await self._batch.read_namespaced_job(name, self._namespace)
            except ApiException as read_error:
                raise _api_error(f"reading Job {name}", read_error) from read_error
            existing: dict[str, Any] = self._api.sanitize_for_serialization(created)
            if run_id_of(existing) != run_id:
                raise ExecutorError(
                    f"Job {name} exists for another run ({run_id_of(existing)}); "
                    "delete it or rename the run"
                ) from error
            return existing
        job: dict[str, Any] = self._api.sanitize_for_serialization(created)
        return job

    async def _reconcile(self, active_run_ids: Sequence[str]) -> Reconciliation:
        await self._connect()
        try:
            listed = await self._batch.list_namespaced_job(self._namespace, label_selector=SELECTOR)
        except ApiException as error:
            raise _api_error("listing Jobs", error) from error
        active = set(active_run_ids)
        found: set[str] = set()
        orphans: list[str] = []
        for item in listed.items:
            job = self._api.sanitize_for_serialization(item)
            run_id = run_id_of(job)
            going = bool(job["metadata"].get("deletionTimestamp"))
            if run_id is not None and run_id in active:
                if not going:  # a Job being deleted is a sandbox already lost
                    found.add(run_id)
                continue
            # Finished Jobs of finished runs stay for inspection until their TTL removes them.
            if going or job_finished(job):
                continue
            if run_id is not None:
                self._runs.setdefault(run_id, _Tracked()).reported = True
            orphans.append(run_id or job["metadata"]["name"])
            await self._delete_job(job["metadata"]["name"])
        lost = [run_id for run_id in active_run_ids if run_id not in found]
        if orphans or lost:
            log.info("reconciled: %d orphan Jobs removed, %d runs lost", len(orphans), len(lost))
        adopted = tuple(run_id for run_id in active_run_ids if run_id in found)
        return Reconciliation(lost=tuple(lost), orphans_removed=tuple(orphans), adopted=adopted)

    async def aclose(self) -> None:
        tasks = [*self._watches]
        tasks += [t.unschedulable_timer for t in self._runs.values() if t.unschedulable_timer]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._watches.clear()
        if self._cluster is not None:
            await self._cluster.api.close()
            self._cluster = None

    async def _delete_job(self, name: str) -> None:
        try:
            await self._batch.delete_namespaced_job(
                name, self._namespace, propagation_policy="Foreground"
            )
        except ApiException as error:
            if error.status != 404:
                raise _api_error(f"deleting Job {name}", error) from error

    async def _watch(self, list_call: Any, handle: Any) -> None:
        """List, then watch from the list's version; start over whenever the watch ends."""
        while True:
            try:
                listed = await list_call(self._namespace, label_selector=SELECTOR)
                for item in listed.items:
                    await handle("ADDED", self._api.sanitize_for_serialization(item))
                stream = watch.Watch().stream(
                    list_call,
                    self._namespace,
                    label_selector=SELECTOR,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=_WATCH_SECONDS,
                )
                async with stream:
                    async for event in stream:
                        await handle(event["type"], event["raw_object"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("watch of runs namespace ended; listing again", exc_info=True)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _report(self, run_id: str, outcome: Outcome, reason: str) -> None:
        tracked = self._runs.setdefault(run_id, _Tracked())
        if tracked.reported:
            return
        tracked.reported = True
        if tracked.unschedulable_timer is not None:
            tracked.unschedulable_timer.cancel()
        log.info("run %s sandbox ended: %s (%s)", run_id, outcome, reason)
        await self._on_exit(SandboxExit(run_id, outcome, reason))

    async def _on_job(self, kind: str, job: dict[str, Any]) -> None:
        run_id = run_id_of(job)
        if run_id is None:
            return
        if kind == "DELETED":
            # Deleted by someone else than this executor (which reports first): no sandbox left.
            await self._report(
                run_id, Outcome.FAILED, "the run's Job was deleted before the runner reported"
            )
            self._runs.pop(run_id, None)
            return
        if not job_finished(job) or self._runs.get(run_id, _Tracked()).reported:
            return
        pods = await self._core.list_namespaced_pod(
            self._namespace, label_selector=f"{JOB_NAME_LABEL}={job['metadata']['name']}"
        )
        outcome, reason = job_verdict(
            job, [self._api.sanitize_for_serialization(p) for p in pods.items]
        )
        await self._report(run_id, outcome, reason)

    async def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        run_id = run_id_of(pod)
        if run_id is None or kind == "DELETED":
            return
        tracked = self._runs.setdefault(run_id, _Tracked())
        if tracked.reported or (pod.get("metadata") or {}).get("deletionTimestamp"):
            return
        stall = pod_stall(pod)
        if stall is not None:
            await self._fail_stalled(run_id, stall)
            return
        since = unschedulable_since(pod)
        if since is not None and tracked.unschedulable_timer is None:
            waited = (datetime.now(UTC) - since).total_seconds()
            tracked.unschedulable_timer = asyncio.create_task(
                self._fail_if_still_unschedulable(
                    run_id, pod["metadata"]["name"], self._unschedulable_timeout - waited
                )
            )

    async def _fail_stalled(self, run_id: str, reason: str) -> None:
        await self._delete_job(job_name(run_id))
        await self._report(run_id, Outcome.FAILED, reason)

    async def _fail_if_still_unschedulable(self, run_id: str, pod: str, delay: float) -> None:
        await asyncio.sleep(max(delay, 0.0))
        try:
            current = await self._core.read_namespaced_pod(pod, self._namespace)
        except ApiException as error:
            if error.status == 404:
                return
            raise
        tracked = self._runs.get(run_id)
        if tracked is None:
            return
        tracked.unschedulable_timer = None
        if unschedulable_since(self._api.sanitize_for_serialization(current)) is None:
            return
        minutes = self._unschedulable_timeout / 60
        await self._fail_stalled(
            run_id, f"the sandbox could not be scheduled for {minutes:g} minutes"
        )
