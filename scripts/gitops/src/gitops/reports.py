"""A validation report: text for people, JSON for tools, JUnit for Cloud Build, Markdown for PRs,
SARIF for code-scanning views."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from itertools import groupby
from xml.etree import ElementTree

from gitops.policy import CATALOGUE, Finding, Severity
from gitops.validation import Report


def _where(finding: Finding) -> str:
    if not finding.file:
        return ""
    return f"{finding.file}:{finding.line}" if finding.line else finding.file


def _summary(report: Report) -> str:
    counts = Counter("suppressed" if f.suppressed else f.severity.value for f in report.findings)
    parts = [
        f"{counts[k]} {k}{'s' if counts[k] != 1 and k != 'suppressed' else ''}"
        for k in ("error", "warning", "suppressed")
    ]
    verdict = "clean" if report.clean else "FAILED"
    more = f" ({report.truncated} more findings not shown)" if report.truncated else ""
    return f"{verdict}: {', '.join(parts)} in {len(report.targets)} targets{more}"


def _by_target(report: Report) -> Iterator[tuple[str, list[Finding]]]:
    seen = {f.target for f in report.findings}
    for target in [*report.targets, *sorted(seen - set(report.targets))]:
        yield target, [f for f in report.findings if f.target == target]


def text(report: Report) -> str:
    lines = []
    for target, findings in _by_target(report):
        skipped = report.skipped_for(target)
        verdict = f"{len(findings)} findings" if findings else "ok"
        if not findings and skipped:
            verdict = "no findings"
        lines.append(f"{target}: {verdict}")
        if skipped:
            lines.append(
                f"  skipped {len(skipped)} rules that need an environment's render "
                f"(run on its overlay): {', '.join(skipped)}; references to objects outside "
                "the file are judged there too"
            )
        for resource, group in groupby(findings, key=lambda f: f.resource):
            lines.append(f"  {resource}")
            for finding in group:
                label = "suppressed" if finding.suppressed else finding.severity.value
                where = f" ({_where(finding)})" if finding.file else ""
                lines.append(f"    {label} {finding.rule}: {finding.message}{where}")
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
                        "file": f.file or None,
                        "line": f.line or None,
                    }
                    for f in report.findings
                ],
                "skipped": {target: list(rules) for target, rules in report.skipped},
                "truncated": report.truncated,
                "unusedSuppressions": list(report.unused_suppressions),
            },
            indent=2,
        )
        + "\n"
    )


def junit(report: Report) -> str:
    """Errors as failures; warnings and suppressed findings as properties of a passing case,
    so a run that exits 0 never shows a failed test."""
    suites = ElementTree.Element("testsuites", name="gitops validate")
    for target, findings in _by_target(report):
        failing = [f for f in findings if not f.suppressed and f.severity is Severity.ERROR]
        others = [f for f in findings if f not in failing]
        skipped = report.skipped_for(target)
        suite = ElementTree.SubElement(
            suites,
            "testsuite",
            name=target,
            tests=str(len(failing) + 1),
            failures=str(len(failing)),
            skipped=str(1 if skipped else 0),
        )
        case = ElementTree.SubElement(suite, "testcase", classname=target, name="all rules")
        if others:
            properties = ElementTree.SubElement(case, "properties")
            for finding in others:
                label = "suppressed" if finding.suppressed else finding.severity.value
                ElementTree.SubElement(
                    properties,
                    "property",
                    name=f"{label} {finding.rule} {finding.resource}",
                    value=(
                        f"{finding.message} (suppressed: {finding.suppressed})"
                        if finding.suppressed
                        else finding.message
                    ),
                )
        if skipped:
            skip = ElementTree.SubElement(suite, "testcase", classname=target, name="skipped rules")
            ElementTree.SubElement(
                skip,
                "skipped",
                message=f"need an environment's render: {', '.join(skipped)}",
            )
        for finding in failing:
            case = ElementTree.SubElement(
                suite, "testcase", classname=target, name=f"{finding.rule} {finding.resource}"
            )
            if finding.file:
                case.set("file", finding.file)
                case.set("line", str(finding.line))
            failure = ElementTree.SubElement(
                case, "failure", message=finding.message, type=finding.severity.value
            )
            failure.text = f"{finding.message}\nfix: {finding.fix}"
    ElementTree.indent(suites)
    return ElementTree.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def sarif(report: Report) -> str:
    """SARIF 2.1.0: one run, the catalogue as rules, each finding at its file and line."""
    used = {f.rule for f in report.findings}
    rules = [
        {
            "id": info.id,
            "name": info.title,
            "shortDescription": {"text": info.title},
            "fullDescription": {"text": info.doc},
            "help": {"text": info.fix},
            "defaultConfiguration": {
                "level": "error" if info.severity is Severity.ERROR else "warning"
            },
            **({"helpUri": info.see} if info.see else {}),
        }
        for info in CATALOGUE
        if info.id in used
    ]
    results = []
    for f in report.findings:
        location: dict[str, object] = {
            "logicalLocations": [
                {"name": f.resource, "fullyQualifiedName": f"{f.target}/{f.resource}"}
            ]
        }
        if f.file:
            physical: dict[str, object] = {"artifactLocation": {"uri": f.file}}
            if f.line:
                physical["region"] = {"startLine": f.line}
            location["physicalLocation"] = physical
        result: dict[str, object] = {
            "ruleId": f.rule,
            "level": "error" if f.severity is Severity.ERROR else "warning",
            "message": {"text": f"{f.resource}: {f.message}. Fix: {f.fix}"},
            "locations": [location],
            "properties": {"target": f.target},
        }
        if f.suppressed:
            result["suppressions"] = [{"kind": "external", "justification": f.suppressed}]
        results.append(result)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "gitops validate", "rules": rules}},
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


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
    "sarif": sarif,
}
