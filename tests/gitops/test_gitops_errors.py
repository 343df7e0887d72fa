"""Every error the tool raises on purpose is a GitopsError, so the CLI maps each one to exit 2."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import gitops
from gitops.errors import GitopsError


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(gitops.__path__, "gitops.")
        if info.name != "gitops.__main__"
    ]


def test_every_error_class_of_the_tool_derives_from_gitops_error() -> None:
    errors = {
        f"{cls.__module__}.{cls.__name__}"
        for name in _modules()
        for cls in vars(importlib.import_module(name)).values()
        if inspect.isclass(cls)
        and issubclass(cls, Exception)
        and cls.__module__ == name
        and not issubclass(cls, GitopsError)
    }
    assert errors == set(), "derive these from gitops.errors.GitopsError"
