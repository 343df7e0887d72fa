"""Argo CD on loopback, syncing a local clone of this repository into the local control plane.

The binary is Argo CD itself, built by `make argocd-tools` from the release pinned in
tools/argocd/go.mod: one multi-call binary that is the application controller, the repo server or
the API server by the name it is called as (the API serves what the dashboard shows; sign-in is
off, as no browser is involved). Redis is Debian's. The cluster gets what the pinned install
kustomization (apps/argocd/install) puts there before the controller starts: Argo CD's CRDs, its
ConfigMaps with this repository's settings, and its Secret. The clusters `dev` and `prod` are
registered with the Secrets the bootstrap writes, both pointing at the local API server.

Argo CD runs outside a pod here, so `https://kubernetes.default.svc` (dev, and the root
Application) is reached through ARGOCD_FAKE_IN_CLUSTER, the switch Argo CD's own end-to-end tests
use: the in-cluster address means the admin kubeconfig. The repository is a bare clone served as a
file URL; its AppProject names that URL instead of GitHub's, the one change made to the tree.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from servers.control_plane import (
    BIN,
    ROOT,
    ControlPlane,
    Processes,
    free_port,
    http_ok,
    kustomize_build,
)
from servers.waiting import wait_for

ARGOCD_NAMESPACE = "argocd"
ARGOCD_MODULE = "github.com/argoproj/argo-cd/v3"
TOOLS = ROOT / "tools" / "argocd"
INSTALL = ROOT / "apps" / "argocd" / "install"
# The URL the repository's AppProject names; the served clone replaces it with its own.
GITHUB_URL = "https://github.com/agent-platform/agent-platform.git"
# How often Argo CD polls git and compares every Application. Production keeps Argo CD's default
# (3 minutes plus up to 1 of jitter, or a webhook); here a change must show within a test's
# patience.
RESYNC_SECONDS = 5
START_TIMEOUT = 90.0
COMPONENTS = (
    "argocd-application-controller",
    "argocd-repo-server",
    "argocd-server",
    "argocd-k8s-auth",
)
# The control plane's own controller manager runs what the runs need; the workloads Argo CD
# syncs also need Deployments to make ReplicaSets and pods, and PodDisruptionBudgets counted.
WORKLOAD_CONTROLLERS = "deployment-controller,replicaset-controller,disruption-controller"


class ArgoCDError(RuntimeError):
    """Argo CD could not be started; the message says what is missing or which log to read."""


def module_dir() -> Path:
    """Where the Go module cache holds the pinned Argo CD release (its CRDs and install.yaml)."""
    result = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", ARGOCD_MODULE],
        cwd=TOOLS,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    directory = Path(result.stdout.strip())
    if result.returncode != 0 or not (directory / "manifests" / "install.yaml").is_file():
        raise ArgoCDError(
            f"the Argo CD module is not in the Go module cache ({result.stderr.strip()}); "
            "run `make argocd-tools`"
        )
    return directory


def missing_tools() -> list[str]:
    missing = [name for name in ("argocd", "kustomize") if not os.access(BIN / name, os.X_OK)]
    return missing + [name for name in ("redis-server", "git") if shutil.which(name) is None]


def install_objects(module: Path, work_dir: Path) -> list[dict[str, Any]]:
    """apps/argocd/install rendered with the module's install.yaml in place of its URL: the
    same release, read from the module cache because the tests have no internet."""
    copy = work_dir / "install"
    shutil.copytree(INSTALL, copy)
    kustomization = yaml.safe_load((copy / "kustomization.yaml").read_text())
    remote = [r for r in kustomization["resources"] if r.startswith("https://")]
    if len(remote) != 1:
        raise ArgoCDError(f"{INSTALL}/kustomization.yaml should name Argo CD's install.yaml once")
    shutil.copy(module / "manifests" / "install.yaml", copy / "install.yaml")
    kustomization["resources"] = [
        "install.yaml" if r == remote[0] else r for r in kustomization["resources"]
    ]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return kustomize_build(copy)


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            **os.environ,
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        },
    )
    if result.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


@dataclass(frozen=True)
class Repository:
    """The repository as Argo CD reads it (a bare clone, by file URL) and a working clone the
    tests commit through, as a person or the pipeline would push to main."""

    url: str
    work: Path

    def git(self, *args: str) -> str:
        return _git(self.work, *args)

    def push(self, message: str) -> str:
        """Commit every change in the working clone to main and push it; the new commit."""
        self.git("add", "--all")
        self.git("commit", "--quiet", "--message", message)
        self.git("push", "--quiet", "origin", "HEAD:main")
        return self.git("rev-parse", "HEAD").strip()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").strip()

    def gitops(self, *args: str) -> None:
        """Run the repository's own `gitops` tool in the working clone, as the pipeline does."""
        subprocess.run(
            [sys.executable, "-m", "gitops", *args],
            cwd=self.work,
            check=True,
            capture_output=True,
            timeout=120,
        )


def served_repository(work_dir: Path) -> Repository:
    """A clone of the working tree's tracked files (uncommitted edits included), on main."""
    bare = work_dir / "origin.git"
    work = work_dir / "clone"
    url = f"file://{bare}"
    _git(work_dir, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    _git(work_dir, "clone", "--quiet", url, str(work))
    tracked = _git(ROOT, "ls-files", "-z").split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():
            target = work / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    project = work / "apps" / "argocd" / "appproject-agent-platform.yaml"
    project.write_text(project.read_text().replace(GITHUB_URL, url))
    repository = Repository(url, work)
    repository.git("checkout", "--quiet", "-b", "main")
    repository.push("The repository as the tests found it")
    return repository


def describe(application: Mapping[str, Any]) -> str:
    """An Application's status as an operator reads it: overall, conditions, the resources that
    are not Synced and Healthy, and the last operation."""
    status = application.get("status") or {}
    lines = [
        f"sync {(status.get('sync') or {}).get('status')}, "
        f"health {(status.get('health') or {}).get('status')}"
    ]
    lines += [f"condition {c['type']}: {c['message']}" for c in status.get("conditions") or []]
    for resource in status.get("resources") or []:
        health = resource.get("health") or {}
        if resource.get("status") != "Synced" or health.get("status", "Healthy") != "Healthy":
            lines.append(
                f"{resource['kind']} {resource.get('namespace', '')}/{resource['name']}: "
                f"{resource.get('status')} {health.get('status')} {health.get('message', '')}"
            )
    operation = status.get("operationState") or {}
    if operation:
        lines.append(f"operation {operation.get('phase')}: {operation.get('message')}")
    return "\n".join(lines)


@dataclass(frozen=True)
class ArgoCD:
    """A running Argo CD: its cluster, the repository it reads, and how to ask it things."""

    plane: ControlPlane
    repository: Repository
    work_dir: Path
    # Argo CD's API, what the dashboard reads, without sign-in.
    api: str

    def application(self, name: str) -> dict[str, Any]:
        return self.plane.get_json("application", name, "-n", ARGOCD_NAMESPACE)

    def status(self, name: str) -> tuple[str, str]:
        """The Application's sync status and health, as the dashboard shows them."""
        status = self.application(name).get("status") or {}
        return (
            str((status.get("sync") or {}).get("status", "")),
            str((status.get("health") or {}).get("status", "")),
        )

    def refresh(self, name: str) -> None:
        """What the dashboard's Refresh button does: compare with git now."""
        self.plane.kubectl(
            "annotate", "application", name, "-n", ARGOCD_NAMESPACE, "--overwrite",
            "argocd.argoproj.io/refresh=normal",
        )  # fmt: skip

    def wait_until(
        self,
        name: str,
        condition: Callable[[dict[str, Any]], bool],
        *,
        what: str,
        timeout: float = 120,
    ) -> dict[str, Any]:
        """Poll the Application until `condition` holds; the timeout message shows its status."""
        seen: dict[str, Any] = {}

        def holds() -> bool:
            result = self.plane.kubectl(
                "get", "application", name, "-n", ARGOCD_NAMESPACE, "-o", "json", check=False
            )
            if result.returncode != 0:
                return False
            seen.clear()
            seen.update(json.loads(result.stdout))
            return condition(seen)

        try:
            wait_for(holds, timeout=timeout, what=f"{name}: {what}", interval=0.5)
        except TimeoutError as error:
            raise AssertionError(f"{error}; last status:\n{describe(seen)}") from None
        return seen

    def get(self, path: str) -> Any:
        """A GET of Argo CD's API, as the dashboard makes it."""
        with urllib.request.urlopen(f"{self.api}{path}", timeout=10) as response:  # noqa: S310
            return json.loads(response.read())

    def log(self, component: str) -> str:
        return (self.work_dir / "logs" / f"{component}.log").read_text(errors="replace")


def root_objects(argocd: ArgoCD) -> list[dict[str, Any]]:
    """What the bootstrap applies: the root Application and its project, from the repository."""
    rendered = kustomize_build(argocd.repository.work / "apps" / "argocd")
    return [o for o in rendered if o["metadata"]["name"] == "agent-platform-root"]


def synced_and_healthy(application: dict[str, Any]) -> bool:
    status = application.get("status") or {}
    sync = (status.get("sync") or {}).get("status")
    return (sync, (status.get("health") or {}).get("status")) == ("Synced", "Healthy")


def synced(application: dict[str, Any]) -> bool:
    return ((application.get("status") or {}).get("sync") or {}).get("status") == "Synced"


class _Processes(Processes):
    """Argo CD's processes, each with its log, its environment and the name it runs under."""

    def wait(self, condition: Callable[[], bool], what: str) -> None:
        def ready() -> bool:
            self.check_alive()
            return condition()

        wait_for(ready, timeout=START_TIMEOUT, what=what, interval=0.2)


@contextlib.contextmanager
def metadata_server(token: str) -> Iterator[str]:
    """The GCE metadata server's token endpoint on loopback, handing out `token` as the access
    token of the node's Google identity; yields the GCE_METADATA_HOST that points at it.

    argocd-k8s-auth asks it when Argo CD reaches a cluster registered with `argocd-k8s-auth gcp`.
    GKE would accept a Google token for the identity; the local API server accepts the
    Kubernetes token a test hands in for it instead.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Metadata-Flavor") != "Google" or not self.path.startswith(
                "/computeMetadata/v1/instance/service-accounts/default/token"
            ):
                self.send_error(404)
                return
            body = json.dumps(
                {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}
            ).encode()
            self.send_response(200)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def component_environment(objects: list[dict[str, Any]], workload: str) -> dict[str, str]:
    """The environment the install gives a component from its ConfigMaps, as the kubelet would
    resolve the workload's configMapKeyRef entries."""
    config_maps = {
        o["metadata"]["name"]: o.get("data") or {} for o in objects if o["kind"] == "ConfigMap"
    }
    (manifest,) = (
        o
        for o in objects
        if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] == workload
    )
    environment = {}
    for container in manifest["spec"]["template"]["spec"]["containers"]:
        for variable in container.get("env") or []:
            reference = (variable.get("valueFrom") or {}).get("configMapKeyRef")
            if reference is None:
                continue
            value = config_maps.get(reference["name"], {}).get(reference["key"])
            if value is not None:
                environment[variable["name"]] = value
    return environment


def _established(plane: ControlPlane, names: list[str]) -> bool:
    listed = plane.get_json(*names)
    items = listed.get("items", [listed])
    return all(
        any(c["type"] == "Established" and c["status"] == "True"
            for c in (item.get("status") or {}).get("conditions") or [])
        for item in items
    )  # fmt: skip


def _apply(plane: ControlPlane, objects: list[dict[str, Any]], *extra: str) -> None:
    plane.kubectl("apply", *extra, "-f", "-", stdin=yaml.safe_dump_all(objects))


@contextlib.contextmanager
def running_argocd(
    plane: ControlPlane,
    work_dir: Path,
    cluster_secrets: list[dict[str, Any]],
    *,
    google_token: str,
) -> Iterator[ArgoCD]:
    """Install Argo CD's objects, start Redis, the repo server and the application controller
    against `plane`, and stop them at exit. `cluster_secrets` register the clusters; a cluster
    reached with a Google identity is reached with `google_token`."""
    missing = missing_tools()
    if missing:
        raise ArgoCDError(
            f"missing {', '.join(missing)}: run `make argocd-tools` to build Argo CD into {BIN} "
            "and install Redis"
        )
    module = module_dir()
    logs = work_dir / "logs"
    logs.mkdir()
    for directory in ("tls", "ssh", "gpg", "home", "tmp"):
        (work_dir / directory).mkdir()
    # The multi-call binary is the component it is called as; the controller also runs
    # argocd-k8s-auth, by that name, for the clusters it reaches with a Google identity.
    commands = work_dir / "bin"
    commands.mkdir()
    for name in COMPONENTS:
        (commands / name).symlink_to(BIN / "argocd")

    objects = install_objects(module, work_dir)
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    settings = [o for o in objects if o["kind"] in ("ConfigMap", "Secret")]
    plane.kubectl("create", "namespace", ARGOCD_NAMESPACE)
    # Server-side: Argo CD's CRDs are too large for the last-applied annotation.
    _apply(plane, crds, "--server-side")
    names = [f"crd/{crd['metadata']['name']}" for crd in crds]
    wait_for(lambda: _established(plane, names), timeout=60, what="Argo CD's CRDs")
    _apply(plane, [{**o, "metadata": {**o["metadata"], "namespace": ARGOCD_NAMESPACE}}
                   for o in settings])  # fmt: skip
    # argocd-server writes this key into argocd-secret at its first start; the controller
    # refuses to read clusters without it.
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    plane.kubectl(
        "patch", "secret", "argocd-secret", "-n", ARGOCD_NAMESPACE, "--type=merge",
        "-p", json.dumps({"stringData": {"server.secretkey": key}}),
    )  # fmt: skip
    _apply(plane, cluster_secrets)
    repository = served_repository(work_dir)

    redis_port, repo_port = free_port(), free_port()
    environment = {
        **os.environ,
        "PATH": f"{commands}:{BIN}:{os.environ.get('PATH', '')}",
        "HOME": str(work_dir / "home"),
        "TMPDIR": str(work_dir / "tmp"),
        "KUBECONFIG": str(plane.admin_kubeconfig),
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "ARGOCD_TLS_DATA_PATH": str(work_dir / "tls"),
        "ARGOCD_SSH_DATA_PATH": str(work_dir / "ssh"),
        "ARGOCD_GNUPGHOME": str(work_dir / "gpg"),
        "ARGOCD_GPG_ENABLED": "false",
        # argocd-cm's timeout.reconciliation, as both workloads read it: how often Argo CD polls
        # git (the repo server caches a branch's commit as long) and compares every Application.
        "ARGOCD_RECONCILIATION_TIMEOUT": f"{RESYNC_SECONDS}s",
        "ARGOCD_RECONCILIATION_JITTER": "0s",
    }
    processes = _Processes(logs, environment, ArgoCDError)
    controller = component_environment(objects, "argocd-application-controller")
    repo_server = component_environment(objects, "argocd-repo-server")
    server = component_environment(objects, "argocd-server")
    api_port = free_port()
    with contextlib.ExitStack() as stack:
        environment["GCE_METADATA_HOST"] = stack.enter_context(metadata_server(google_token))
        stack.callback(processes.stop)
        processes.start(
            "redis",
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(work_dir)],
        )  # fmt: skip
        processes.start(
            "kube-controller-manager",
            [
                str(BIN / "kube-controller-manager"),
                f"--kubeconfig={plane.admin_kubeconfig}",
                "--secure-port=0",
                "--leader-elect=false",
                f"--controllers={WORKLOAD_CONTROLLERS}",
            ],
        )
        processes.start(
            "argocd-repo-server",
            [str(commands / "argocd-repo-server"),
             "--port", str(repo_port), "--address", "127.0.0.1",
             "--metrics-port", str(free_port()), "--redis", f"127.0.0.1:{redis_port}",
             "--disable-tls", "--loglevel", "info"],
            repo_server,
        )  # fmt: skip
        processes.start(
            "argocd-application-controller",
            [str(commands / "argocd-application-controller"), "--namespace", ARGOCD_NAMESPACE,
             "--kubeconfig", str(plane.admin_kubeconfig),
             "--redis", f"127.0.0.1:{redis_port}",
             "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
             "--metrics-port", str(free_port()),
             "--self-heal-timeout-seconds", "1",
             "--loglevel", "info"],
            controller,
        )  # fmt: skip
        processes.start(
            "argocd-server",
            [str(commands / "argocd-server"), "--namespace", ARGOCD_NAMESPACE,
             "--kubeconfig", str(plane.admin_kubeconfig),
             "--redis", f"127.0.0.1:{redis_port}",
             "--repo-server", f"127.0.0.1:{repo_port}", "--repo-server-plaintext",
             "--address", "127.0.0.1", "--port", str(api_port),
             "--metrics-port", str(free_port()),
             "--insecure", "--disable-auth", "--dex-server", "",
             "--loglevel", "info"],
            server,
        )  # fmt: skip
        argocd = ArgoCD(plane, repository, work_dir, f"http://127.0.0.1:{api_port}")
        processes.wait(
            lambda: "Starting" in argocd.log("argocd-application-controller"),
            "the Argo CD application controller to start",
        )
        processes.wait(lambda: http_ok(f"{argocd.api}/healthz"), "the Argo CD API to answer")
        yield argocd
        processes.check_alive()
