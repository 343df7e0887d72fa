"""Reports in every format, suppressions with their reasons, and the exit codes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest
from gitops.cli import main

WriteFiles = Callable[[dict[str, str]], Path]

KUSTOMIZATION = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [pod.yaml]
"""
PRIVILEGED_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: builder, namespace: agent-platform}
spec:
  containers:
    - {name: docker, image: "docker:27.3-dind", securityContext: {privileged: true}}
"""
SUPPRESSION = """\
suppressions:
  - rule: AP001
    target: dev
    resource: Pod agent-platform/*
    reason: the image builder is being replaced by Cloud Build this sprint
"""


@pytest.fixture
def overlay(scratch_repo: WriteFiles) -> Path:
    return scratch_repo(
        {"overlays/dev/kustomization.yaml": KUSTOMIZATION, "overlays/dev/pod.yaml": PRIVILEGED_POD}
    )


def _run(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["--root", str(root), "validate", *args])
    return code, capsys.readouterr().out


def test_text_report_groups_findings_by_environment_and_resource(
    overlay: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(overlay, capsys)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("dev: ")
    assert lines[1] == "  Pod agent-platform/builder"
    assert "    error AP001: container docker is privileged (overlays/dev/pod.yaml:1)" in lines
    assert lines[-1].startswith("FAILED: ")


def test_json_junit_and_markdown_reports_carry_the_same_findings(
    overlay: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    junit, markdown = tmp_path / "report.xml", tmp_path / "report.md"
    code, out = _run(
        overlay,
        capsys,
        "--format",
        "json",
        "--report",
        f"junit={junit}",
        "--report",
        f"markdown={markdown}",
    )
    report = json.loads(out)
    rules = sorted({f["rule"] for f in report["findings"]})
    assert "AP001" in rules
    suite = ElementTree.parse(junit).getroot().find("testsuite")  # noqa: S314 - our own output
    assert suite is not None
    assert suite.get("name") == "dev"
    errors = [f for f in report["findings"] if f["severity"] == "error" and not f["suppressed"]]
    assert int(suite.get("failures", "0")) == len(errors)
    failures = [case.get("name", "") for case in suite.iter("testcase")]
    assert "AP001 Pod agent-platform/builder" in failures
    table = markdown.read_text()
    assert "| dev | `Pod agent-platform/builder` | **AP001** |" in table
    assert code == 1


def test_a_suppressed_finding_passes_and_shows_its_reason_in_every_format(
    overlay: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = overlay / "gitops.yaml"
    config.write_text(config.read_text() + SUPPRESSION)
    reason = "the image builder is being replaced by Cloud Build this sprint"
    for fmt in ("text", "json", "junit", "markdown"):
        _, out = _run(overlay, capsys, "--format", fmt, "--report", f"{fmt}={tmp_path / fmt}")
        assert reason in out, fmt
        assert reason in (tmp_path / fmt).read_text(), fmt
    _, out = _run(overlay, capsys, "--format", "json")
    [suppressed] = [f for f in json.loads(out)["findings"] if f["rule"] == "AP001"]
    assert suppressed["suppressed"] == reason


def test_a_suppression_that_matches_nothing_is_pointed_out(
    overlay: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = overlay / "gitops.yaml"
    config.write_text(config.read_text() + SUPPRESSION.replace("dev", "prod"))
    _, out = _run(overlay, capsys, "--format", "json")
    assert json.loads(out)["unusedSuppressions"] == ["AP001 prod Pod agent-platform/*"]


def test_a_suppression_without_a_reason_is_a_configuration_error(
    overlay: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = overlay / "gitops.yaml"
    config.write_text(config.read_text() + "suppressions:\n  - {rule: AP001, target: dev}\n")
    code = main(["--root", str(overlay), "validate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "'reason' is a required property" in err


def test_an_unknown_setting_is_a_configuration_error(
    overlay: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = overlay / "gitops.yaml"
    config.write_text(config.read_text() + "digestPinnedEnvironment: [prod]\n")
    assert main(["--root", str(overlay), "validate"]) == 2
    assert "digestPinnedEnvironment" in capsys.readouterr().err


def test_a_clean_environment_exits_zero(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    config_map = (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: agent-platform}\n"
        "data: {LOG_LEVEL: info}\n"
    )
    root = scratch_repo(
        {
            "overlays/dev/kustomization.yaml": KUSTOMIZATION.replace("pod.yaml", "cm.yaml"),
            "overlays/dev/cm.yaml": config_map,
        }
    )
    config = root / "gitops.yaml"
    config.write_text(
        config.read_text()
        + "suppressions:\n  - rule: ENV001\n    target: dev\n"
        + "    reason: this scratch environment has no platform-environment facts\n"
    )
    code, out = _run(root, capsys)
    assert out.splitlines()[-1].startswith("clean: ")
    assert code == 0


def test_a_kustomization_that_does_not_build_is_a_finding_with_kustomizes_message(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"overlays/dev/kustomization.yaml": KUSTOMIZATION})
    code, out = _run(root, capsys, "--format", "json")
    [render] = json.loads(out)["findings"]
    assert render["rule"] == "RENDER001"
    assert "pod.yaml" in render["message"]
    assert code == 1


LOPSIDED_POD = """\
apiVersion: v1
kind: Pod
metadata: {name: lopsided, namespace: agent-platform}
spec:
  nodeSelector: {kubernetes.io/arch: amd64}
  securityContext: {runAsNonRoot: true, runAsUser: 10001, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: app
      image: registry.example.com/app:1.0
      resources: {requests: {cpu: "1", memory: 8Gi}}
      securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
"""


def test_warnings_are_reported_but_do_not_fail(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    root = scratch_repo({"pod.yaml": LOPSIDED_POD})
    code, out = _run(root, capsys, str(root / "pod.yaml"))
    assert any(
        line.startswith("    warning AP011: the pod has 8.00Gi memory per CPU")
        and line.endswith("(pod.yaml:1)")
        for line in out.splitlines()
    )
    assert out.splitlines()[-1] == "clean: 0 errors, 1 warning, 0 suppressed in 1 targets"
    assert code == 0


def test_warnings_are_junit_properties_not_failures(
    scratch_repo: WriteFiles, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = scratch_repo({"pod.yaml": LOPSIDED_POD})
    code, _ = _run(root, capsys, str(root / "pod.yaml"), "--report", f"junit={tmp_path / 'j.xml'}")
    suite = ElementTree.parse(tmp_path / "j.xml").getroot().find("testsuite")  # noqa: S314
    assert suite is not None
    assert suite.get("failures") == "0"
    names = [p.get("name", "") for p in suite.iter("property")]
    assert any(name.startswith("warning AP011") for name in names)
    assert code == 0


def test_sarif_places_each_finding_at_its_file_and_line(
    overlay: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _run(overlay, capsys, "--format", "sarif")
    run = json.loads(out)["runs"][0]
    [result] = [r for r in run["results"] if r["ruleId"] == "AP001"]
    physical = result["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "overlays/dev/pod.yaml"
    assert physical["region"]["startLine"] == 1
    assert "AP001" in {rule["id"] for rule in run["tool"]["driver"]["rules"]}
    assert code == 1


def test_a_bad_report_path_is_refused_before_anything_runs(
    overlay: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = f"junit={tmp_path / 'missing' / 'r.xml'}"
    code = main(["--root", str(overlay), "validate", "--report", bad])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "does not exist" in captured.err
