"""A validation report: text for people, JSON for tools, JUnit for Cloud Build, Markdown for PRs."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import groupby
from xml.etree import ElementTree

from gitops.policy import Finding
from gitops.validation import Report


def _summary(report: Report) -> str:
    counts = Counter("suppressed" if f.suppressed else f.severity.value for f in report.findings)
    parts = [
        f"{counts[k]} {k}{'s' if counts[k] != 1 and k != 'suppressed' else ''}"
        for k in ("error", "warning", "suppressed")
    ]
    verdict = "clean" if report.clean else "FAILED"
    return f"{verdict}: {', '.join(parts)} in {len(report.targets)} targets"


def _by_target(report: Report) -> Iterator[tuple[str, list[Finding]]]:
    seen = {f.target for f in report.findings}
    for target in [*report.targets, *sorted(seen - set(report.targets))]:
        yield target, [f for f in report.findings if f.target == target]


def text(report: Report) -> str:
    lines = []
    for target, findings in _by_target(report):
        lines.append(f"{target}: {'ok' if not findings else f'{len(findings)} findings'}")
        for resource, group in groupby(findings, key=lambda f: f.resource):
            lines.append(f"  {resource}")
            for finding in group:
                label = "suppressed" if finding.suppressed else finding.severity.value
                lines.append(f"    {label} {finding.rule}: {finding.message}")
                if finding.suppressed:
                    lines.append(f"      reason: {finding.suppressed}")
                else:
                    lines.append(f"      fix: {finding.fix}")
    for stale in report.unused_suppressions:
        lines.append(f"note: suppression {stale} matched nothing; delete it from gitops.yaml")
    lines.append(_summary(report))
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> str:
    return (
        json.dumps(
            {
                "clean": report.clean,
                "summary": _summary(report),
                "targets": list(report.targets),
                "findings": [
                    {
                        "rule": f.rule,
                        "severity": f.severity.value,
                        "target": f.target,
                        "resource": f.resource,
                        "message": f.message,
                        "fix": f.fix,
                        "suppressed": f.suppressed,
                    }
                    for f in report.findings
                ],
                "unusedSuppressions": list(report.unused_suppressions),
            },
            indent=2,
        )
        + "\n"
    )


def junit(report: Report) -> str:
    suites = ElementTree.Element("testsuites", name="gitops validate")
    for target, findings in _by_target(report):
        failures = [f for f in findings if not f.suppressed]
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=target,
            tests=str(max(len(findings), 1)),
            failures=str(len(failures)),
            skipped=str(len(findings) - len(failures)),
        )
        if not findings:
            ElementTree.SubElement(suite, "testcase", classname=target, name="all rules")
        for finding in findings:
            case = ElementTree.SubElement(
                suite, "testcase", classname=target, name=f"{finding.rule} {finding.resource}"
            )
            if finding.suppressed:
                ElementTree.SubElement(case, "skipped", message=f"suppressed: {finding.suppressed}")
            else:
                failure = ElementTree.SubElement(
                    case, "failure", message=finding.message, type=finding.severity.value
                )
                failure.text = f"{finding.message}\nfix: {finding.fix}"
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def markdown(report: Report) -> str:
    icon = "✅" if report.clean else "❌"
    lines = [f"### {icon} gitops validate", "", _summary(report), ""]
    for target, findings in _by_target(report):
        if not findings:
            lines.append(f"- **{target}**: no findings")
    findings = list(report.findings)
    if findings:
        lines += ["", "| target | resource | rule | finding | fix |", "|---|---|---|---|---|"]
        for f in findings:
            rule = f"~~{f.rule}~~" if f.suppressed else f"**{f.rule}**"
            fix = f"suppressed: {f.suppressed}" if f.suppressed else f.fix
            lines.append(
                f"| {_cell(f.target)} | `{_cell(f.resource)}` | {rule} | {_cell(f.message)} | "
                f"{_cell(fix)} |"
            )
    for stale in report.unused_suppressions:
        lines.append(f"\n> suppression `{stale}` matched nothing; delete it from gitops.yaml")
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[Report], str]] = {
    "text": text,
    "json": as_json,
    "junit": junit,
    "markdown": markdown,
}
