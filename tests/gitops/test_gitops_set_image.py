"""`gitops set-image` and `gitops promote`: kustomize's edit, comments and order kept."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from gitops.cli import main
from gitops.imagerefs import ImageReferenceError, parse_image
from gitops.kustomization_images import ImageChange, parse_change

WriteFiles = Callable[[dict[str, str]], Path]

DIGEST_A = "sha256:" + "a" * 63 + "1"
DIGEST_B = "sha256:" + "0123456789abcdef" * 4
REGISTRY = "asia-northeast3-docker.pkg.dev/example-project/agent-platform"

DEV = f"""\
# Dev follows main; Cloud Build pins each image here after a push.
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../apps/agent-platform/base # the API
images:
  # The API server.
  - name: agent-platform
    newName: {REGISTRY}/agent-platform
    digest: {DIGEST_A}
  - name: agent-runner # the sandbox image
    newName: {REGISTRY}/agent-runner
    digest: {DIGEST_B}
"""
PROD = f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - ../../apps/agent-platform/base
images:
  - name: agent-runner # promoted from dev
    newName: {REGISTRY}/agent-runner
    newTag: "1.0"
  - name: agent-platform
    newName: {REGISTRY}/agent-platform
    newTag: "1.0"
"""


@pytest.fixture
def overlays(scratch_repo: WriteFiles) -> Path:
    return scratch_repo(
        {"overlays/dev/kustomization.yaml": DEV, "overlays/prod/kustomization.yaml": PROD}
    )


def test_set_image_pins_a_digest_and_keeps_comments_and_order(
    overlays: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(overlays), "set-image", "dev", f"agent-runner@{DIGEST_A}"])
    text = (overlays / "overlays/dev/kustomization.yaml").read_text()
    assert code == 0
    assert text == DEV.replace(f"digest: {DIGEST_B}", f"digest: {DIGEST_A}")


def test_set_image_with_a_tag_replaces_the_digest_and_adds_new_images_in_name_order(
    overlays: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["--root", str(overlays), "set-image", "dev", "agent-platform:1.2.3", "aaa-proxy=proxy:2"])
    text = (overlays / "overlays/dev/kustomization.yaml").read_text()
    assert "  - name: agent-platform\n    newName: " in text
    assert "newTag: 1.2.3\n  - name: agent-runner" in text
    assert f"digest: {DIGEST_A}" not in text
    assert text.index("name: aaa-proxy") < text.index("name: agent-platform")
    assert "# The API server." in text


def test_promote_copies_devs_digests_to_prod(
    overlays: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(overlays), "promote", "dev", "prod"])
    text = (overlays / "overlays/prod/kustomization.yaml").read_text()
    assert code == 0
    assert text == PROD.replace(
        '    newTag: "1.0"\n  - name: agent-platform',
        f"    digest: {DIGEST_B}\n  - name: agent-platform",
    ).replace('    newTag: "1.0"\n', f"    digest: {DIGEST_A}\n")


def test_promote_refuses_a_source_image_without_a_digest(
    overlays: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (overlays / "overlays/dev/kustomization.yaml").read_text()
    code = main(["--root", str(overlays), "promote", "prod", "dev"])
    assert code == 2
    assert "has no digest" in capsys.readouterr().err
    assert (overlays / "overlays/dev/kustomization.yaml").read_text() == before


@pytest.mark.parametrize(
    ("spec", "complaint"),
    [
        ("agent-runner@sha256:1234", "not an image digest"),
        ("agent-runner@md5:" + "a" * 32, "not an image digest"),
        ("Agent-Runner:1.0", "not an image name"),
        ("agent-runner:-bad", "not an image tag"),
        ("agent-runner", "changes nothing"),
        ("agent-runner@", "no digest"),
    ],
)
def test_set_image_refuses_a_malformed_reference_and_leaves_the_file_alone(
    overlays: Path, capsys: pytest.CaptureFixture[str], spec: str, complaint: str
) -> None:
    before = (overlays / "overlays/dev/kustomization.yaml").read_text()
    code = main(["--root", str(overlays), "set-image", "dev", "agent-platform:1.0", spec])
    assert code == 2
    assert complaint in capsys.readouterr().err
    assert (overlays / "overlays/dev/kustomization.yaml").read_text() == before


def test_a_change_reads_like_kustomize_edit_set_image() -> None:
    assert parse_change(f"app={REGISTRY}/app:1.0@{DIGEST_A}") == ImageChange(
        name="app", new_name=f"{REGISTRY}/app", tag="1.0", digest=DIGEST_A
    )
    assert parse_change("localhost:5000/app:2") == ImageChange(name="localhost:5000/app", tag="2")


def test_image_references_parse_into_name_tag_and_digest() -> None:
    image = parse_image(f"{REGISTRY}/app:1.0@{DIGEST_B}")
    assert (image.name, image.tag, image.digest) == (f"{REGISTRY}/app", "1.0", DIGEST_B)
    assert str(image) == f"{REGISTRY}/app:1.0@{DIGEST_B}"
    with pytest.raises(ImageReferenceError):
        parse_image("")
