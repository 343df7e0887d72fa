"""The agent-sandbox controller (`make agent-sandbox`) against the local control plane, with the
CRDs of the same module: what GKE's Agent Sandbox add-on runs in a cluster.

It runs with the extensions on (SandboxTemplate, SandboxWarmPool, SandboxClaim) as the cluster's
admin, the way the managed add-on's controller holds its own cluster-wide rights.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

from servers.control_plane import BIN, ControlPlane, free_port, http_ok
from servers.waiting import wait_for

CONTROLLER = BIN / "agent-sandbox-controller"
CRDS = BIN / "agent-sandbox-crds"
START_TIMEOUT = 90.0


class AgentSandboxMissing(RuntimeError):
    """The controller or its CRDs are not built; the message says how to build them."""


def crd_files() -> list[Path]:
    files = sorted(CRDS.glob("*.yaml"))
    if not CONTROLLER.exists() or not files:
        raise AgentSandboxMissing(
            f"no agent-sandbox controller or CRDs in {BIN}; run `make agent-sandbox`"
        )
    return files


def install_crds(plane: ControlPlane) -> list[str]:
    """Apply the module's CRDs and wait until they are served; their names."""
    files = crd_files()
    # The files are named `<group>_<plural>.yaml`, as controller-gen writes them.
    names = [f"{path.stem.partition('_')[2]}.{path.stem.partition('_')[0]}" for path in files]
    plane.kubectl("apply", "--server-side", *(f"-f={path}" for path in files))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names)
    )
    return names


@contextlib.contextmanager
def running_agent_sandbox_controller(plane: ControlPlane) -> Iterator[None]:
    """Install the CRDs, start the controller, wait until it is ready, stop it at exit."""
    install_crds(plane)
    probe = free_port()
    log_path = plane.work_dir / "logs" / "agent-sandbox-controller.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(CONTROLLER),
                f"--kubeconfig={plane.admin_kubeconfig}",
                "--extensions=true",
                "--leader-elect=false",
                "--metrics-bind-address=0",
                f"--health-probe-bind-address=127.0.0.1:{probe}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def ready() -> bool:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise AgentSandboxMissing(
                f"agent-sandbox-controller exited with {process.returncode}:\n{tail}"
            )
        return http_ok(f"http://127.0.0.1:{probe}/readyz")

    try:
        wait_for(ready, timeout=START_TIMEOUT, what="the agent-sandbox controller", interval=0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
