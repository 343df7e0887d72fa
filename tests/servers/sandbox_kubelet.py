"""The kubelet's part for warm sandboxes on the local control plane: it runs the real runner for
each pod the agent-sandbox controller starts from the `agent-runner` SandboxTemplate.

kwok gives every pod a lifecycle but runs nothing, and hands out pod IPs from a loopback range
(see control_plane.py), so a process on this machine can listen on a pod's own address. For each
running pod with a `handover` port this starts `python -m agent_runner` with the pod's
environment as a kubelet would resolve it (the downward API's status.podIP included), its
workspace in a temporary directory, and AGENT_PLATFORM_URL pointed at the test's platform in
place of cluster DNS. With `job_pods`, a Job's runner pod gets its runner too, its token written
from the run's Secret to a file as the kubelet mounts it. When the runner exits, the pod's
container ends with its exit code; when the pod is deleted, the runner gets SIGTERM.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from servers.control_plane import EXIT_CODE_ANNOTATION, ControlPlane
from servers.waiting import wait_for

log = logging.getLogger(__name__)

RUNNER_SELECTOR = "app.kubernetes.io/name=agent-runner"
# The controller labels a warm pod with its claim's uid once a claim takes it.
CLAIM_UID_LABEL = "agents.x-k8s.io/claim-uid"
STOP_SECONDS = 15.0
SECRET_WAIT_SECONDS = 30.0


@dataclass
class _Sandbox:
    pod: str
    process: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class SandboxKubelet:
    """Runners started for warm pods, by pod name; `started` in the order they started."""

    plane: ControlPlane
    namespace: str
    platform_url: str
    work_dir: Path
    job_pods: bool = False
    command: tuple[str, ...] = (sys.executable, "-m", "agent_runner")
    sandboxes: dict[str, _Sandbox] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def waiting_warm_pods(self) -> list[str]:
        """Warm pods of the pool, unclaimed, whose runner is up and awaiting its handover."""
        pods = self.plane.get_json("pods", "-n", self.namespace, "-l", RUNNER_SELECTOR)
        with self._lock:
            running = {n for n, s in self.sandboxes.items() if s.process.poll() is None}
        return [
            p["metadata"]["name"]
            for p in pods["items"]
            if CLAIM_UID_LABEL not in (p["metadata"].get("labels") or {})
            and not p["metadata"].get("deletionTimestamp")
            and p["metadata"]["name"] in running
        ]

    def runner_log(self, pod: str) -> str:
        return self.sandboxes[pod].log_path.read_text(errors="replace")

    def logs(self) -> str:
        return "".join(s.log_path.read_text(errors="replace") for s in self.sandboxes.values())

    def _client(self) -> httpx.Client:
        pki = self.plane.ca_file.parent
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return httpx.Client(
            base_url=self.plane.server, verify=context, timeout=httpx.Timeout(30.0, read=None)
        )

    def _watch(self) -> None:
        path = f"/api/v1/namespaces/{self.namespace}/pods"
        with self._client() as api:
            while not self._stopping.is_set():
                try:
                    answer = api.get(path, params={"labelSelector": RUNNER_SELECTOR})
                    answer.raise_for_status()
                    listed = answer.json()
                    for pod in listed["items"]:
                        self._on_pod("ADDED", pod)
                    params = {
                        "labelSelector": RUNNER_SELECTOR,
                        "watch": "true",
                        "resourceVersion": listed["metadata"]["resourceVersion"],
                        # Short, so that stopping never waits long for the stream to end.
                        "timeoutSeconds": "5",
                    }
                    with api.stream("GET", path, params=params) as stream:
                        for line in stream.iter_lines():
                            if self._stopping.is_set():
                                return
                            if line:
                                event = json.loads(line)
                                self._on_pod(event["type"], event["object"])
                except httpx.HTTPError:
                    if not self._stopping.is_set():
                        log.warning("pod watch ended; listing again", exc_info=True)

    def _on_pod(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        with self._lock:
            sandbox = self.sandboxes.get(name)
            if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
                if sandbox is not None and sandbox.process.poll() is None:
                    sandbox.process.terminate()
                return
            status = pod.get("status") or {}
            if sandbox is not None and status.get("phase") in ("Succeeded", "Failed"):
                # The pod's container ended (a test played it): its process goes too.
                if sandbox.process.poll() is None:
                    sandbox.process.terminate()
                return
            if sandbox is not None or status.get("phase") != "Running" or not status.get("podIP"):
                return
            runner = pod["spec"]["containers"][0]
            warm = any(p.get("name") == "handover" for p in runner.get("ports") or [])
            if not warm and not self.job_pods:
                return  # a Job's pod: its tests play the runner themselves
            self.sandboxes[name] = self._start(name, pod, status["podIP"])
            self.started.append(name)

    def _mounted_token(self, pod: dict[str, Any], sandbox_dir: Path) -> dict[str, str]:
        """A Job pod's token Secret as the file the kubelet mounts, or nothing for a warm pod."""
        secrets = [
            v["secret"]["secretName"] for v in pod["spec"].get("volumes") or [] if "secret" in v
        ]
        if not secrets:
            return {}
        token_file = sandbox_dir / "token"
        token_file.write_bytes(self._secret_token(secrets[0]))
        return {"AGENT_RUN_TOKEN_FILE": str(token_file)}

    def _secret_token(self, secret: str) -> bytes:
        path = f"/api/v1/namespaces/{self.namespace}/secrets/{secret}"
        found: list[bytes] = []

        def read() -> bool:
            answer = api.get(path)
            if answer.is_success:
                found.append(base64.b64decode(answer.json()["data"]["token"]))
            return bool(found)

        with self._client() as api:
            # The platform creates the Secret just after the Job; a kubelet waits for it too.
            wait_for(read, timeout=SECRET_WAIT_SECONDS, what=f"the token Secret {secret}")
        return found[0]

    def _start(self, name: str, pod: dict[str, Any], pod_ip: str) -> _Sandbox:
        container = pod["spec"]["containers"][0]
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
        for variable in container.get("env") or []:
            if "value" in variable:
                env[variable["name"]] = variable["value"]
            elif (
                variable.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP"
            ):
                env[variable["name"]] = pod_ip
        sandbox_dir = self.work_dir / name
        for directory in ("workspace", "tmp"):
            (sandbox_dir / directory).mkdir(parents=True, exist_ok=True)
        env.update(
            {
                "AGENT_PLATFORM_URL": self.platform_url,
                "AGENT_WORKSPACE": str(sandbox_dir / "workspace"),
                "HOME": str(sandbox_dir / "tmp"),
                **self._mounted_token(pod, sandbox_dir),
            }
        )
        log_path = sandbox_dir / "runner.log"
        with log_path.open("wb") as out:
            process = subprocess.Popen(
                list(self.command),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=sandbox_dir,
            )
        threading.Thread(target=self._reap, args=(name, process), daemon=True).start()
        return _Sandbox(name, process, log_path)

    def _reap(self, pod: str, process: subprocess.Popen[bytes]) -> None:
        code = process.wait()
        if self._stopping.is_set():
            return
        # As the kubelet reports it: a runner killed by a signal ends with 128 + the signal.
        exit_code = code if code >= 0 else 128 - code
        self.plane.kubectl(
            "annotate", "pod", pod, "-n", self.namespace, "--overwrite",
            f"{EXIT_CODE_ANNOTATION}={exit_code}", check=False,
        )  # fmt: skip

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            processes = [s.process for s in self.sandboxes.values()]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_SECONDS)


@contextlib.contextmanager
def running_sandbox_kubelet(
    plane: ControlPlane,
    namespace: str,
    platform_url: str,
    work_dir: Path,
    *,
    job_pods: bool = False,
    command: tuple[str, ...] = (sys.executable, "-m", "agent_runner"),
) -> Iterator[SandboxKubelet]:
    kubelet = SandboxKubelet(plane, namespace, platform_url, work_dir, job_pods, command)
    thread = threading.Thread(target=kubelet._watch, daemon=True)
    thread.start()
    try:
        yield kubelet
    finally:
        kubelet.stop()
        thread.join(timeout=15)
