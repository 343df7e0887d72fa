"""A replica started in place of a killed one takes over the runs whose Jobs still exist, and
fails, saying why, the runs whose Jobs went while no replica watched.

Each replica is the real `agent-platform serve` with the Kubernetes executor and a data
directory of its own, so it holds leases under a name of its own, as a replacement pod does; the
Firestore emulator is the database they share. The test plays the runner in the pod's place.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from agent_platform.domain import Lease, utcnow
from agent_platform.executors.job_spec import job_name
from agent_platform.store.firestore import FirestoreStore
from cluster.cluster_runs import (
    RUNS,
    WAIT,
    api,
    job_condition,
    kubernetes_env,
    mounted_token,
    post_as_runner,
    running_pod,
    start_run,
    status,
    wait_status,
)
from servers.control_plane import ControlPlane
from servers.executors import delete_run_jobs
from servers.firestore_emulator import FirestoreEmulator, firestore_emulator
from servers.platform import RunningPlatform, event, result_event, running_platform
from servers.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.emulator]

__all__ = ["firestore_emulator"]  # the session fixture the database comes from

# Short, so that the killed replica's lease runs out while the test watches the replacement.
TAKEOVER_LEASE = timedelta(seconds=3)
# Longer than a replacement takes to start, so that it finds the killed replica's lease alive.
LOST_LEASE = timedelta(seconds=20)


@dataclass(frozen=True)
class Replicas:
    """Platform processes on one database, each with its own data directory."""

    root: Path
    env: dict[str, str]

    def start(self, name: str) -> AbstractContextManager[RunningPlatform]:
        return running_platform(self.root / name, self.env)

    def lease(self, run_id: str) -> Lease | None:
        """The run's lease as the database holds it."""

        async def read() -> Lease | None:
            store = FirestoreStore.open(self.env["AGENT_PLATFORM_GCP_PROJECT"])
            try:
                run = await store.get_run_unscoped(run_id)
            finally:
                await store.aclose()
            assert run is not None, run_id
            return run.lease

        return asyncio.run(read())


def replicas(
    tmp_path: Path, emulator: FirestoreEmulator, kubeconfig: Path, lease: timedelta
) -> Replicas:
    return Replicas(
        tmp_path,
        {
            **kubernetes_env(kubeconfig),
            **emulator.env,
            "AGENT_PLATFORM_STORE": "firestore",
            "AGENT_PLATFORM_GCP_PROJECT": emulator.new_project(),
            "AGENT_PLATFORM_RUN_LEASE_SECONDS": str(lease.total_seconds()),
        },
    )


@pytest.fixture(autouse=True)
def clean_runs(control_plane: ControlPlane) -> Iterator[None]:
    yield
    delete_run_jobs(control_plane)


def events_of(replica: RunningPlatform, run_id: str) -> list[tuple[int, str]]:
    listed: dict[str, Any] = api(replica, "GET", f"/api/runs/{run_id}/events")
    return [(e["seq"], e["type"]) for e in listed["items"]]


def test_a_replacement_replica_takes_over_a_running_job_and_loses_no_runner_event(
    tmp_path: Path,
    control_plane: ControlPlane,
    platform_kubeconfig: Path,
    firestore_emulator: FirestoreEmulator,
) -> None:
    shared = replicas(tmp_path, firestore_emulator, platform_kubeconfig, TAKEOVER_LEASE)
    with shared.start("killed") as killed:
        run_id = start_run(killed)
        pod = running_pod(control_plane, run_id)
        token = mounted_token(control_plane, run_id)
        first = [event(1, "status", status="running"), event(2)]
        assert post_as_runner(killed, run_id, token, first).json()["acked_seq"] == 2
        # Stored, but the runner loses the answer with the replica and sends 3 again below.
        assert post_as_runner(killed, run_id, token, [event(3)]).status_code == 200
        old = shared.lease(run_id)
        assert old is not None
        killed.kill()

    with shared.start("replacement") as replacement:
        # Renewed by the replacement after the killed replica's lease ran out: taken over, and
        # not finished as a lost replica's run.
        wait_for(
            lambda: (
                (lease := shared.lease(run_id)) is not None
                and lease.holder != old.holder
                and lease.until - TAKEOVER_LEASE > old.until
            ),
            timeout=WAIT,
            what="the replacement to renew the run's lease past the killed replica's",
            interval=0.2,
        )
        assert status(replacement, run_id)["status"] == "running"
        assert job_condition(control_plane, run_id) is None
        assert running_pod(control_plane, run_id) == pod

        rest = [event(3), event(4), result_event(5, "succeeded")]
        answer = post_as_runner(replacement, run_id, token, rest)
        assert answer.status_code == 200, answer.text
        assert answer.json()["acked_seq"] == 5
        wait_status(replacement, run_id, "succeeded")

        # The replacement watches the Job it took over; its end changes nothing now.
        ended_before = replacement.log().count("sandbox ended")
        control_plane.end_pod_container(pod, RUNS, exit_code=0)
        wait_for(
            lambda: replacement.log().count("sandbox ended") > ended_before,
            timeout=WAIT,
            what="the replacement to see the Job it took over end",
        )
        assert job_condition(control_plane, run_id) == "Complete"
        assert status(replacement, run_id)["status"] == "succeeded"
        assert events_of(replacement, run_id) == [
            (1, "status"),
            (2, "text_delta"),
            (3, "text_delta"),
            (4, "text_delta"),
            (5, "result"),
        ]


def test_a_replacement_replica_fails_a_run_whose_job_was_deleted_while_none_ran(
    tmp_path: Path,
    control_plane: ControlPlane,
    platform_kubeconfig: Path,
    firestore_emulator: FirestoreEmulator,
) -> None:
    shared = replicas(tmp_path, firestore_emulator, platform_kubeconfig, LOST_LEASE)
    with shared.start("killed") as killed:
        run_id = start_run(killed)
        running_pod(control_plane, run_id)
        killed.kill()
    delete_run_jobs(control_plane)

    with shared.start("replacement") as replacement:
        # The killed replica's lease still runs: the replacement cannot tell it from a live
        # replica that is creating the Job right now, so it waits for the lease to run out.
        lease = shared.lease(run_id)
        assert lease is not None
        assert not lease.expired(utcnow()), "the replacement took longer than LOST_LEASE to start"

        wait_for(
            lambda: status(replacement, run_id)["status"] != "running",
            timeout=LOST_LEASE.total_seconds() + WAIT,
            what="the run to end",
            interval=0.2,
        )
        finished = status(replacement, run_id)
        assert finished["status"] == "failed"
        assert "sandbox was lost" in (finished["error"] or "")
        assert events_of(replacement, run_id)[-1][1] == "result"
        assert not control_plane.exists("job", job_name(run_id), RUNS)
