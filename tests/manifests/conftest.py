"""Every render target, built once per session, for the semantic tests on the manifests."""

from __future__ import annotations

import pytest
from manifests.rendering import ROOT, Rendering, environment_names, render


@pytest.fixture(scope="session")
def environments() -> dict[str, Rendering]:
    return {name: render(ROOT / "overlays" / name) for name in environment_names()}


@pytest.fixture
def environment(request: pytest.FixtureRequest, environments: dict[str, Rendering]) -> Rendering:
    """One environment's rendering; tests that take it run once per discovered overlay."""
    name: str = request.param
    return environments[name]


@pytest.fixture(scope="session")
def argocd() -> Rendering:
    return render(ROOT / "apps" / "argocd")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "environment" in metafunc.fixturenames:
        names = environment_names()
        metafunc.parametrize("environment", names, ids=names, indirect=True)
