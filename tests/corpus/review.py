"""`gitops validate` over tests/corpus, each finding matched to its expected verdict.

Shared by the corpus test, which fails on a wrong or unjudged finding, and the validate
benchmark, which reports the false-positive rate.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import yaml
from gitops.config import load_config
from gitops.policy import Finding
from gitops.targets import KUSTOMIZATION_FILES, Target, from_paths
from gitops.toolchain import find_tool
from gitops.validation import Tools, validate

CORPUS = Path(__file__).parent
REPO_ROOT = Path(__file__).resolve().parents[2]
VERDICTS = ("correct", "defensible", "wrong")


@dataclass(frozen=True)
class Verdict:
    target: str
    rule: str
    resource: str
    verdict: str
    why: str

    def matches(self, finding: Finding) -> bool:
        return (
            fnmatchcase(finding.target, self.target)
            and fnmatchcase(finding.rule, self.rule)
            and fnmatchcase(finding.resource, self.resource)
        )


@dataclass(frozen=True)
class Review:
    findings: tuple[tuple[Finding, Verdict | None], ...]
    # Verdicts no finding matched: the table no longer describes what validate says.
    unused: tuple[Verdict, ...]

    @property
    def counts(self) -> Counter[str]:
        return Counter(v.verdict if v else "unjudged" for _, v in self.findings)

    @property
    def wrong(self) -> list[Finding]:
        return [f for f, v in self.findings if v is not None and v.verdict == "wrong"]

    @property
    def unjudged(self) -> list[Finding]:
        return [f for f, v in self.findings if v is None]

    @property
    def false_positive_rate(self) -> float:
        return len(self.wrong) / len(self.findings) if self.findings else 0.0


def verdicts() -> list[Verdict]:
    entries = yaml.safe_load((CORPUS / "verdicts.yaml").read_text(encoding="utf-8"))
    found = [Verdict(**{k: str(v) for k, v in entry.items()}) for entry in entries]
    for verdict in found:
        if verdict.verdict not in VERDICTS:
            raise ValueError(f"{verdict}: verdict must be one of {VERDICTS}")
    return found


def targets() -> list[Target]:
    """Every kustomization directory and every manifest file, as a user names them."""
    config = load_config(CORPUS)
    files = sorted(p for p in CORPUS.rglob("*.yaml") if p.parent != CORPUS)
    directories = sorted({p.parent for p in files if p.name in KUSTOMIZATION_FILES})
    manifests = [p for p in files if p.name not in KUSTOMIZATION_FILES]
    return from_paths(config, [*directories, *manifests])


def review() -> Review:
    config = load_config(CORPUS)
    tools = Tools(*(find_tool(name, REPO_ROOT) for name in Tools.__dataclass_fields__))
    report = validate(config, targets(), tools=tools)
    table = verdicts()
    judged = tuple(
        (finding, next((v for v in table if v.matches(finding)), None))
        for finding in report.findings
    )
    used = {id(v) for _, v in judged if v is not None}
    return Review(judged, tuple(v for v in table if id(v) not in used))
