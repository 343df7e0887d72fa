"""The pinned binaries the tooling runs: found in ./bin, else on PATH, else a clear error."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from gitops.errors import GitopsError

# The Makefile target that installs each tool.
INSTALL_TARGET = {
    "kustomize": "make tools",
    "kubeconform": "make tools",
    "psa": "make tools",
    "gitleaks": "make tools",
}


class ToolMissing(GitopsError):
    """A required binary is not installed."""


def find_tool(name: str, root: Path) -> str:
    """Absolute path of `name` from <root>/bin or PATH."""
    local = root / "bin" / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    raise ToolMissing(
        f"{name} is not installed in {root / 'bin'} or on PATH: run `{INSTALL_TARGET[name]}` "
        "at the repository root (it builds the pinned version with Go)"
    )
