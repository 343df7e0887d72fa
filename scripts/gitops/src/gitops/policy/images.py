"""Image references: well-formed, never `latest`, digest-pinned where the settings say so."""

from __future__ import annotations

from collections.abc import Iterator

from gitops.imagerefs import ImageReferenceError, parse_image
from gitops.policy.model import Context, Severity, Violation, each_container, rule
from gitops.policy.workloads import container_name


@rule(
    "IMG001",
    Severity.ERROR,
    "image references well-formed",
    reads=("spec.containers[].image",),
    fix="write the image as registry/path/name:tag or registry/path/name@sha256:<64 hex>",
    doc="A malformed reference fails at pull time, after the rollout has started.",
)
def well_formed(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        try:
            parse_image(str(container.get("image", "")))
        except ImageReferenceError as error:
            yield Violation(workload.resource, f"container {container_name(container)}: {error}")


@rule(
    "IMG002",
    Severity.ERROR,
    "no `latest` or untagged images",
    reads=("spec.containers[].image",),
    fix="pin a version tag or a digest with `gitops set-image`",
    doc="`latest` makes a rollout unrepeatable and hides what changed.",
)
def no_latest(ctx: Context) -> Iterator[Violation]:
    for workload, container in each_container(ctx):
        try:
            image = parse_image(str(container.get("image", "")))
        except ImageReferenceError:
            continue
        if image.digest is None and image.tag in {None, "latest"}:
            yield Violation(
                workload.resource,
                f"container {container_name(container)} uses {image.name}:{image.tag or 'latest'}",
            )


@rule(
    "IMG003",
    Severity.ERROR,
    "images pinned by digest where required",
    reads=("spec.containers[].image", "gitops.yaml digestPinnedEnvironments"),
    fix="pin the image by digest in the overlay's images: (`gitops promote dev prod` copies "
    "dev's digests)",
    doc="A tag can be moved; only a digest says exactly what production runs.",
    # A base names placeholder images that the overlay pins: only the render tells.
    whole_render=True,
)
def digests(ctx: Context) -> Iterator[Violation]:
    if ctx.environment not in ctx.settings.digest_environments:
        return
    for workload, container in each_container(ctx):
        try:
            image = parse_image(str(container.get("image", "")))
        except ImageReferenceError:
            continue
        if image.digest is None:
            yield Violation(
                workload.resource,
                f"container {container_name(container)} image {image} has no digest",
            )


RULES = (well_formed, no_latest, digests)
