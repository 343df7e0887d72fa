"""Where a tool's commands run: in a bubblewrap sandbox on a laptop, as they are in a pod.

On a laptop the runner shares the machine with the platform, its database, other users' runs
and their runners, so every tool command runs under bubblewrap (as Claude Code's sandbox does on
Linux): the workspace is the only writable place and is seen as `/workspace`; `/usr` and a few
files of `/etc` are read-only; the platform's data, the repository and `$HOME` are not there at
all; own user, PID, IPC, UTS, cgroup and network namespaces, so no other process of the machine
can be seen (no token or key read from `/proc`) and nothing can be reached over the network.

Every command is the init of its own PID namespace: when it ends, or when the runner kills it,
the kernel ends everything it started, including processes that `setsid` away; and
`--die-with-parent` ties the sandbox to the runner, so a runner killed hard takes it along. No
sandboxed process therefore runs between two tool calls.

In a pod the pod is the sandbox (gVisor, no token, default-deny network), and commands run
unconfined inside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from agent_runner.wire_names import SANDBOX_BUBBLEWRAP

# Where the workspace appears inside a bubblewrap sandbox: the same path as in a pod.
SANDBOX_WORKSPACE: Final = "/workspace"
# The parts of /etc that programs need (dynamic linking, time zone, user names, alternatives);
# the rest of /etc stays out, since files only root may read would be readable here: the
# sandbox's user maps to the runner's, which is root on some machines.
_ETC: Final = (
    "/etc/alternatives",
    "/etc/group",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/mime.types",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/ssl/certs",
)
# Debian's merged /usr: the top-level program and library directories are links into /usr.
_USR_LINKS: Final = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")
# An unprivileged uid inside the sandbox, whatever the runner's is.
_SANDBOX_UID: Final = "1000"


class ToolSandbox(Protocol):
    """Wraps a command so that it runs confined; names the workspace as commands see it."""

    # The workspace on the runner's side.
    @property
    def root(self) -> Path: ...

    @property
    def workspace(self) -> str: ...

    def command(self, argv: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True)
class Unconfined:
    """Commands run as they are: the pod around the runner is the sandbox."""

    root: Path

    @property
    def workspace(self) -> str:
        return str(self.root)

    def command(self, argv: Sequence[str]) -> list[str]:
        return list(argv)


@dataclass(frozen=True)
class Bubblewrap:
    """Commands run under bubblewrap, the workspace their only writable place."""

    root: Path
    executable: str = "bwrap"

    @property
    def workspace(self) -> str:
        return SANDBOX_WORKSPACE

    def command(self, argv: Sequence[str]) -> list[str]:
        return [*self.prefix(), "--", *argv]

    def prefix(self) -> list[str]:
        args = [
            self.executable,
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--uid",
            _SANDBOX_UID,
            "--gid",
            _SANDBOX_UID,
            "--cap-drop",
            "ALL",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in _USR_LINKS:
            if (Path("/usr") / name).is_dir():
                args += ["--symlink", f"usr/{name}", f"/{name}"]
        for path in _ETC:
            if Path(path).exists():
                args += ["--ro-bind", path, path]
        args += [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--tmpfs",
            "/tmp",  # noqa: S108 - a private tmpfs inside the sandbox
            "--bind",
            str(self.root),
            SANDBOX_WORKSPACE,
            "--chdir",
            SANDBOX_WORKSPACE,
        ]
        return args


def for_mode(mode: str, workspace: Path) -> ToolSandbox:
    """The sandbox the platform asked for: bubblewrap, or none where the pod is the sandbox."""
    if mode == SANDBOX_BUBBLEWRAP:
        return Bubblewrap(workspace)
    return Unconfined(workspace)
