"""A real Kubernetes control plane on loopback: etcd, kube-apiserver (RBAC on), the Job, garbage
collector and TTL controllers, kube-scheduler, and kwok standing in for the kubelet.

The binaries are built by `make cluster-tools` into ./bin. Every run gets fresh certificates, a
fresh etcd and free ports in a temporary directory, so nothing is shared with another test run.

kwok gives pods a lifecycle and loopback IPs: a scheduled pod becomes Running and stays so until
a test plays the container's end by annotating the pod (see `end_pod_container`), the way a
kubelet would report an exit, an OOM kill or an eviction. A pod created with IMAGE_PULL_ANNOTATION
never starts: its container waits in ErrImagePull.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from servers.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "bin"
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
NODE_NAME = "kwok-node-0"
START_TIMEOUT = 90.0

# Annotations a test sets on a running pod to end its container, read by the pod-exit stage.
EXIT_CODE_ANNOTATION = "test.agent-platform.dev/exit-code"
EXIT_REASON_ANNOTATION = "test.agent-platform.dev/exit-reason"
POD_REASON_ANNOTATION = "test.agent-platform.dev/pod-reason"
# A pod carrying this annotation (from its template) fails to pull its image, as the kubelet says.
IMAGE_PULL_ANNOTATION = "test.agent-platform.dev/image-pull-fails"

_KWOK_STAGES = f"""\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.podIP'
      operator: 'DoesNotExist'
    - key: '.metadata.annotations["{IMAGE_PULL_ANNOTATION}"]'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      conditions:
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "True"
        type: Ready
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "True"
        type: ContainersReady
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: true
        restartCount: 0
        state:
          running:
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      hostIP: {{{{ NodeIPWith .spec.nodeName | Quote }}}}
      {{{{ $meta := .metadata }}}}
      podIP: {{{{ PodIPWith .spec.nodeName false $meta.uid $meta.name $meta.namespace | Quote }}}}
      phase: Running
      startTime: {{{{ $now | Quote }}}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-exit
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.annotations["{EXIT_CODE_ANNOTATION}"]'
      operator: 'Exists'
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      {{{{ $code := index .metadata.annotations "{EXIT_CODE_ANNOTATION}" }}}}
      {{{{ $reason := or ( index .metadata.annotations "{EXIT_REASON_ANNOTATION}" ) "Error" }}}}
      {{{{ $podReason := or ( index .metadata.annotations "{POD_REASON_ANNOTATION}" ) "" }}}}
      conditions:
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "False"
        type: Ready
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "False"
        type: ContainersReady
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{{{ $code }}}}
            finishedAt: {{{{ $now | Quote }}}}
            reason: {{{{ if eq $code "0" }}}}Completed{{{{ else }}}}{{{{ $reason }}}}{{{{ end }}}}
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      {{{{ if $podReason }}}}
      reason: {{{{ $podReason }}}}
      message: {{{{ printf "The node was low on resource: memory. %s" $podReason | Quote }}}}
      {{{{ end }}}}
      phase: {{{{ if eq $code "0" }}}}Succeeded{{{{ else }}}}Failed{{{{ end }}}}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-image-pull-failed
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.containerStatuses'
      operator: 'DoesNotExist'
    - key: '.metadata.annotations["{IMAGE_PULL_ANNOTATION}"]'
      operator: 'Exists'
  next:
    statusTemplate: |
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        restartCount: 0
        state:
          waiting:
            reason: ErrImagePull
            message: {{{{ printf "failed to pull image %s: not found" .image | Quote }}}}
      {{{{ end }}}}
      phase: Pending
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    finalizers:
      empty: true
    delete: true
"""


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message names the component and its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def missing_binaries() -> list[str]:
    return [name for name in BINARIES if not os.access(BIN / name, os.X_OK)]


@dataclass(frozen=True)
class ControlPlane:
    """A running control plane: where it listens and how to reach it as cluster admin."""

    server: str
    ca_file: Path
    admin_kubeconfig: Path
    work_dir: Path

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        stdin: str | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        config = kubeconfig or self.admin_kubeconfig
        result = subprocess.run(
            [str(BIN / "kubectl"), f"--kubeconfig={config}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def get_json(self, *args: str) -> dict[str, Any]:
        result = self.kubectl("get", "-o", "json", *args)
        parsed: dict[str, Any] = json.loads(result.stdout)
        return parsed

    def exists(self, kind: str, name: str, namespace: str) -> bool:
        result = self.kubectl(
            "get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name", check=False
        )
        return bool(result.stdout.strip())

    def service_account_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig holding a real token of the ServiceAccount, from the TokenRequest API."""
        token = self.kubectl(
            "create", "token", name, "-n", namespace, "--duration=2h"
        ).stdout.strip()
        path = self.work_dir / f"kubeconfig-{namespace}-{name}"
        _write_kubeconfig(path, self.server, self.ca_file, {"token": token})
        return path

    def end_pod_container(
        self, pod: str, namespace: str, *, exit_code: int, reason: str = "", pod_reason: str = ""
    ) -> None:
        """Play the kubelet reporting the pod's container ended (exit code, OOMKilled, ...)."""
        annotations = [f"{EXIT_CODE_ANNOTATION}={exit_code}"]
        if reason:
            annotations.append(f"{EXIT_REASON_ANNOTATION}={reason}")
        if pod_reason:
            annotations.append(f"{POD_REASON_ANNOTATION}={pod_reason}")
        self.kubectl("annotate", "pod", pod, "-n", namespace, "--overwrite", *annotations)


@dataclass
class Processes:
    """Background servers, each logging to its own file, stopped last-started first."""

    logs: Path
    environment: Mapping[str, str] | None = None
    error: type[Exception] = field(default=RuntimeError)
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], environment: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        env = None if self.environment is None else {**self.environment, **(environment or {})}
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        self.running.append((name, process))
        return process

    def check_alive(self) -> None:
        for name, process in self.running:
            if process.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise self.error(
                    f"{name} exited with {process.returncode}; end of its log:\n{tail}"
                )

    def stop(self) -> None:
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.running):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _openssl(pki: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=pki, check=True, capture_output=True, timeout=60)


_EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")


def _issue_certificate(pki: Path, name: str, subject: str, extensions: str) -> None:
    _openssl(pki, "req", "-new", *_EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject)  # fmt: skip
    (pki / f"{name}.ext").write_text(extensions)
    _openssl(pki, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext")  # fmt: skip


def _make_pki(pki: Path) -> None:
    pki.mkdir(parents=True)
    _openssl(pki, "req", "-x509", *_EC_KEY, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test-cluster-ca")  # fmt: skip
    _issue_certificate(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n"
        "extendedKeyUsage=serverAuth\n",
    )
    # The control plane's own components act as cluster admins; RBAC is still enforced for
    # every other identity, among them the platform's ServiceAccount.
    _issue_certificate(
        pki, "admin", "/O=system:masters/CN=cluster-admin", "extendedKeyUsage=clientAuth\n"
    )
    _openssl(pki, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", "service-accounts.key")  # fmt: skip
    _openssl(pki, "pkey", "-in", "service-accounts.key", "-pubout", "-out", "service-accounts.pub")


def _write_kubeconfig(path: Path, server: str, ca_file: Path, user: dict[str, str]) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "test", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": "test", "user": user}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        "current-context": "test",
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def _https_ok(url: str, context: ssl.SSLContext) -> bool:
    try:
        with urllib.request.urlopen(url, context=context, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether `url` answers 200 over plain HTTP within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except OSError:
        return False


NODE_CAPACITY = {"cpu": "32", "memory": "256Gi", "ephemeral-storage": "1Ti", "pods": "110"}


def kwok_node(
    name: str, *, labels: Mapping[str, str] | None = None, spec: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A kwok-simulated amd64 Linux node with room for a busy namespace."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "type": "kwok",
                **(labels or {}),
            },
        },
        "spec": dict(spec or {}),
        "status": {
            "allocatable": dict(NODE_CAPACITY),
            "capacity": dict(NODE_CAPACITY),
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _node_manifest() -> str:
    # A GKE Sandbox node: where the gVisor RuntimeClass sends the runs, and nothing else goes.
    node = kwok_node(
        NODE_NAME,
        labels={"sandbox.gke.io/runtime": "gvisor"},
        spec={
            "taints": [{"key": "sandbox.gke.io/runtime", "value": "gvisor", "effect": "NoSchedule"}]
        },
    )
    return json.dumps(node)


def kustomize_build(path: Path) -> list[dict[str, Any]]:
    """The objects the kustomization at `path` renders to, with the pinned kustomize."""
    rendered = subprocess.run(
        [str(BIN / "kustomize"), "build", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


@contextlib.contextmanager
def running_control_plane(work_dir: Path) -> Iterator[ControlPlane]:
    """Start every component, wait until a pod can be scheduled and run, stop them at exit."""
    missing = missing_binaries()
    if missing:
        raise ControlPlaneError(
            f"missing control plane binaries in {BIN}: {', '.join(missing)}; "
            "run `make cluster-tools` to build them"
        )
    pki = work_dir / "pki"
    _make_pki(pki)
    logs = work_dir / "logs"
    logs.mkdir()
    processes = Processes(logs, error=ControlPlaneError)

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    admin_kubeconfig = work_dir / "admin.kubeconfig"
    _write_kubeconfig(
        admin_kubeconfig,
        server,
        pki / "ca.crt",
        {
            "client-certificate": str(pki / "admin.crt"),
            "client-key": str(pki / "admin.key"),
        },
    )
    stages = work_dir / "kwok.yaml"
    stages.write_text(_KWOK_STAGES)
    plane = ControlPlane(server, pki / "ca.crt", admin_kubeconfig, work_dir)
    try:
        processes.start(
            "etcd",
            [
                str(BIN / "etcd"),
                "--name=test",
                f"--data-dir={work_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
                # The store is thrown away after the run: durability only costs time here.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        _wait_alive(
            processes, lambda: http_ok(f"http://127.0.0.1:{etcd_port}/health"), "etcd health"
        )
        processes.start(
            "kube-apiserver",
            [
                str(BIN / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={work_dir / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=RBAC",
                "--anonymous-auth=false",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'service-accounts.pub'}",
                f"--service-account-signing-key-file={pki / 'service-accounts.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )
        context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        _wait_alive(
            processes, lambda: _https_ok(f"{server}/readyz", context), "kube-apiserver /readyz"
        )
        processes.start(
            "kube-controller-manager",
            [
                str(BIN / "kube-controller-manager"),
                f"--kubeconfig={admin_kubeconfig}",
                "--secure-port=0",
                "--leader-elect=false",
                # The runs namespace has a ResourceQuota; pods are only admitted once the quota
                # controller has computed its usage.
                "--controllers=job-controller,garbage-collector-controller,"
                "ttl-after-finished-controller,resourcequota-controller,"
                "serviceaccount-controller,namespace-controller",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--service-account-private-key-file={pki / 'service-accounts.key'}",
                "--concurrent-job-syncs=5",
            ],
        )
        processes.start(
            "kube-scheduler",
            [
                str(BIN / "kube-scheduler"),
                f"--kubeconfig={admin_kubeconfig}",
                "--secure-port=0",
                "--leader-elect=false",
            ],
        )
        processes.start(
            "kwok",
            [
                str(BIN / "kwok"),
                f"--kubeconfig={admin_kubeconfig}",
                f"--config={stages}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                # Pod IPs on loopback: a process playing a pod's container can listen on the
                # pod's own address, and the platform reaches it there as in a cluster.
                "--cidr=127.10.0.1/24",
                "--node-ip=10.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        plane.kubectl("apply", "-f", "-", stdin=_node_manifest())
        _wait_alive(processes, lambda: _node_ready(plane), f"node {NODE_NAME} to be Ready")
        # Admission taints every new node not-ready; without a kubelet the node lifecycle
        # controller has nothing to watch, so the taint is lifted here once kwok reports Ready.
        plane.kubectl("taint", "node", NODE_NAME, "node.kubernetes.io/not-ready:NoSchedule-")
        yield plane
    finally:
        processes.stop()


def _node_ready(plane: ControlPlane) -> bool:
    result = plane.kubectl(
        "get",
        "node",
        NODE_NAME,
        "-o",
        'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        check=False,
    )
    return result.stdout.strip() == "True"


def _wait_alive(processes: Processes, condition: Callable[[], bool], what: str) -> None:
    def ready() -> bool:
        processes.check_alive()
        return condition()

    wait_for(ready, timeout=START_TIMEOUT, what=what, interval=0.2)
