"""One Argo CD release everywhere: the install in git, the build the tests run, the bootstrap."""

from __future__ import annotations

import re

import yaml
from gitops.bootstrap.plan import ARGOCD_VERSION
from servers.argocd import INSTALL, TOOLS


def test_the_install_the_build_and_the_bootstrap_name_one_release() -> None:
    kustomization = yaml.safe_load((INSTALL / "kustomization.yaml").read_text())
    (url,) = (r for r in kustomization["resources"] if r.startswith("https://"))
    installed = re.search(r"/argo-cd/(v[0-9.]+)/manifests/install\.yaml$", url)
    built = re.search(r"^require github\.com/argoproj/argo-cd/v3 (v\S+)$",
                      (TOOLS / "go.mod").read_text(), re.MULTILINE)  # fmt: skip
    makefile = (TOOLS.parents[1] / "Makefile").read_text()
    made = re.search(r"^ARGOCD_VERSION := (v\S+)$", makefile, re.MULTILINE)
    assert installed
    assert built
    assert made
    assert {installed[1], built[1], made[1], ARGOCD_VERSION} == {ARGOCD_VERSION}
