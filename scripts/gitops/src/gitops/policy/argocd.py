"""Argo CD objects agree with the AppProject that confines them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from fnmatch import fnmatchcase
from typing import Any

from gitops.imagerefs import is_placeholder
from gitops.manifests import Resource, mapping, sequence
from gitops.policy.model import Context, Severity, Violation, each_container, rule

ARGOCD_NAMESPACE = "argocd"
_ARGO_KINDS = ("Application", "ApplicationSet", "AppProject")


def _application_spec(resource: Resource) -> Mapping[str, Any]:
    spec = mapping(resource.body.get("spec"))
    if resource.kind == "ApplicationSet":
        return mapping(mapping(spec.get("template")).get("spec"))
    return spec


def _applications(ctx: Context) -> Iterator[tuple[Resource, Mapping[str, Any]]]:
    for resource in (*ctx.kind("Application"), *ctx.kind("ApplicationSet")):
        if resource.group == "argoproj.io":
            yield resource, _application_spec(resource)


def _templated(value: str) -> bool:
    return "{{" in value


def _project(ctx: Context, resource: Resource, spec: Mapping[str, Any]) -> Resource | None:
    return ctx.find(
        "AppProject", resource.namespace or ARGOCD_NAMESPACE, str(spec.get("project", ""))
    )


@rule(
    "ARGO001",
    Severity.ERROR,
    "Applications belong to a project defined here",
    reads=("Application.spec.project", "ApplicationSet.spec.template.spec.project"),
    fix="set spec.project to the repository's AppProject (not `default`), defined in apps/argocd",
    doc="The `default` project allows any source and destination; ours confines them.",
    whole_render=True,
)
def project_exists(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        name = str(spec.get("project", ""))
        if _templated(name):
            continue
        if _project(ctx, resource, spec) is None:
            yield Violation(resource, f"project {name or '(none)'} is not defined here")


def _sources(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    single = mapping(spec.get("source"))
    return [single] if single else [mapping(s) for s in sequence(spec.get("sources"))]


@rule(
    "ARGO002",
    Severity.ERROR,
    "sources allowed by the AppProject",
    reads=("Application.spec.source.repoURL", "AppProject.spec.sourceRepos"),
    fix="add the repository to the AppProject's sourceRepos or fix the Application's repoURL",
    doc="Argo CD refuses to sync an Application whose source its project does not permit.",
    whole_render=True,
)
def sources_allowed(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        project = _project(ctx, resource, spec)
        if project is None:
            continue
        allowed = [str(r) for r in sequence(mapping(project.body.get("spec")).get("sourceRepos"))]
        for source in _sources(spec):
            url = str(source.get("repoURL", ""))
            if not _templated(url) and not any(fnmatchcase(url, p) for p in allowed):
                yield Violation(
                    resource, f"repoURL {url} is not in project {project.name}'s sourceRepos"
                )


def _glob(pattern: str, value: str) -> bool:
    """Argo CD's project glob: `*` matches anything, even "", and `!pattern` what it does not."""
    if pattern.startswith("!"):
        return not fnmatchcase(value, pattern[1:])
    return pattern == "*" or fnmatchcase(value, pattern)


def _destination_allowed(destination: Mapping[str, Any], allowed: list[Mapping[str, Any]]) -> bool:
    """Argo CD's AppProject.isDestinationMatched (pkg/apis/application/v1alpha1, v3.2).

    An omitted namespace is matched as "", which only `*` (or a deny pattern) matches: an
    Application without destination.namespace fails with InvalidSpecError even when every object
    it renders names a permitted namespace. A deny entry that excludes the destination wins.
    """
    namespace = str(destination.get("namespace", ""))
    server = str(destination.get("server", ""))
    name = str(destination.get("name", ""))
    matched = False
    for permitted in allowed:
        permitted_name = str(permitted.get("name", ""))
        permitted_server = str(permitted.get("server", ""))
        permitted_namespace = str(permitted.get("namespace", ""))
        name_matched = bool(name) and _glob(permitted_name, name)
        server_matched = bool(server) and _glob(permitted_server, server)
        namespace_matched = _glob(permitted_namespace, namespace)
        denied_cluster = (not name_matched and permitted_name.startswith("!")) or (
            not server_matched and permitted_server.startswith("!") and namespace_matched
        )
        denied_namespace = (
            not namespace_matched and permitted_namespace.startswith("!") and server_matched
        )
        if (server_matched or name_matched) and namespace_matched:
            matched = True
        elif denied_cluster or denied_namespace:
            return False
    return matched


@rule(
    "ARGO003",
    Severity.ERROR,
    "destinations allowed by the AppProject",
    reads=("Application.spec.destination", "AppProject.spec.destinations"),
    fix="set the Application's destination.namespace to one its AppProject lists for the "
    "cluster, or add the destination to the AppProject",
    doc="Argo CD refuses an Application whose destination cluster and namespace (an omitted "
    'namespace counts as "") no entry of its project matches.',
    whole_render=True,
)
def destinations_allowed(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        project = _project(ctx, resource, spec)
        if project is None:
            continue
        destination = mapping(spec.get("destination"))
        if any(_templated(str(v)) for v in destination.values()):
            continue
        allowed = [
            mapping(d) for d in sequence(mapping(project.body.get("spec")).get("destinations"))
        ]
        if not _destination_allowed(destination, allowed):
            where = destination.get("server") or destination.get("name")
            # Worded as Argo CD words its InvalidSpecError, so the two read the same.
            yield Violation(
                resource,
                f"destination {where} and namespace '{destination.get('namespace', '')}' do not "
                f"match any of the allowed destinations in project {project.name}",
            )


@rule(
    "ARGO004",
    Severity.ERROR,
    "Argo CD objects live in the argocd namespace",
    reads=("metadata.namespace",),
    fix=f"set metadata.namespace: {ARGOCD_NAMESPACE}",
    doc="Argo CD only watches its own namespace for Applications and AppProjects.",
)
def argocd_namespace(ctx: Context) -> Iterator[Violation]:
    for kind in _ARGO_KINDS:
        for resource in ctx.kind(kind):
            if resource.group == "argoproj.io" and resource.namespace != ARGOCD_NAMESPACE:
                yield Violation(resource, f"is in namespace {resource.namespace or '(none)'}")


# Kinds without a namespace: Argo CD checks them against clusterResourceWhitelist.
CLUSTER_SCOPED = frozenset(
    {
        ("", "Namespace"),
        ("", "PersistentVolume"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),
        ("cloud.google.com", "ComputeClass"),
        ("networking.k8s.io", "IngressClass"),
        ("node.k8s.io", "RuntimeClass"),
        ("rbac.authorization.k8s.io", "ClusterRole"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("scheduling.k8s.io", "PriorityClass"),
        ("storage.k8s.io", "StorageClass"),
    }
)


def _listed(entries: object, group: str, kind: str) -> bool:
    return any(
        fnmatchcase(group, str(mapping(e).get("group", "")))
        and fnmatchcase(kind, str(mapping(e).get("kind", "")))
        for e in sequence(entries)
    )


def _kind_permitted(project: Mapping[str, Any], group: str, kind: str) -> bool:
    if (group, kind) in CLUSTER_SCOPED:
        allowed, denied = "clusterResourceWhitelist", "clusterResourceBlacklist"
        # Argo CD denies every cluster-scoped kind unless the project lists it.
        listed = _listed(project.get(allowed), group, kind)
    else:
        allowed, denied = "namespaceResourceWhitelist", "namespaceResourceBlacklist"
        listed = allowed not in project or _listed(project.get(allowed), group, kind)
    return listed and not _listed(project.get(denied), group, kind)


@rule(
    "ARGO005",
    Severity.ERROR,
    "Applications sync only what their AppProject permits",
    reads=(
        "Application.spec.source.path",
        "AppProject.spec.*ResourceWhitelist",
        "AppProject.spec.destinations",
    ),
    fix="add the kind to the AppProject's namespaceResourceWhitelist/clusterResourceWhitelist, "
    "or the namespace to its destinations, or drop the object from the overlay",
    doc="Argo CD refuses the whole sync when one rendered object's kind or namespace is not "
    "permitted by the project.",
    whole_render=True,
)
def synced_objects_permitted(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        project = _project(ctx, resource, spec)
        if project is None:
            continue
        permits = mapping(project.body.get("spec"))
        destination = mapping(spec.get("destination"))
        allowed = [mapping(d) for d in sequence(permits.get("destinations"))]
        for source in _sources(spec):
            objects = ctx.renders.get(str(source.get("path", "")).strip("/"))
            for item in objects or ():
                if not _kind_permitted(permits, item.group, item.kind):
                    yield Violation(
                        resource,
                        f"{item.ref} from {source.get('path')}: kind not permitted by "
                        f"project {project.name}",
                    )
                elif (item.group, item.kind) not in CLUSTER_SCOPED:
                    where = {
                        **destination,
                        "namespace": item.namespace or destination.get("namespace", ""),
                    }
                    if not _destination_allowed(where, allowed):
                        yield Violation(
                            resource,
                            f"{item.ref} from {source.get('path')}: namespace not in "
                            f"project {project.name}'s destinations",
                        )


def _automated(spec: Mapping[str, Any]) -> bool:
    policy = mapping(spec.get("syncPolicy"))
    if "automated" not in policy:
        return False
    # Argo CD 3 can keep the settings of automated sync with it switched off.
    return mapping(policy.get("automated")).get("enabled") is not False


@rule(
    "ARGO006",
    Severity.ERROR,
    "no placeholder digests where Argo CD syncs automatically",
    reads=("Application.spec.syncPolicy.automated", "spec.containers[].image"),
    fix="pin built images before the environment syncs: the main pipeline pins dev with "
    "`gitops set-image`, `gitops promote dev prod` pins prod, and the bootstrap applies the "
    "Applications only once main holds both pins (`gitops pinned`)",
    doc="A placeholder digest names no image: an automatically synced environment would roll "
    "out pods that never pull (ImagePullBackOff), and prod would do so in its next window.",
    whole_render=True,
)
def no_placeholder_digests(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        if not _automated(spec):
            continue
        for source in _sources(spec):
            path = str(source.get("path", "")).strip("/")
            objects = ctx.renders.get(path)
            if not objects:
                continue
            rendered = Context.build(path, objects, ctx.settings)
            for workload, container in each_container(rendered):
                digest = str(container.get("image", "")).rpartition("@")[2]
                if is_placeholder(digest):
                    yield Violation(
                        resource,
                        f"syncs {path} automatically, where {workload.resource.ref} container "
                        f"{container.get('name')} runs the placeholder {digest}",
                    )


# A full commit id: the one revision nothing can move.
_COMMIT = re.compile(r"[0-9a-f]{40}")


@rule(
    "ARGO007",
    Severity.ERROR,
    "digest-pinned environments sync a release commit, not a branch",
    reads=("Application.spec.source.targetRevision", "gitops.yaml digestPinnedEnvironments"),
    fix="point the Application at the commit holding the promoted digests: "
    "pipelines/promote.yaml runs `gitops promote dev prod`, commits, and `gitops release prod "
    "<that commit>`",
    doc="An Application that follows a branch rolls out every merged change to a base (env "
    "vars, the runner's pod template, NetworkPolicies, RBAC) against the environment's older "
    "images, with no PR touching the environment.",
    whole_render=True,
)
def release_pinned(ctx: Context) -> Iterator[Violation]:
    for resource, spec in _applications(ctx):
        for source in _sources(spec):
            path = str(source.get("path", "")).strip("/")
            environment = path.rpartition("/")[2]
            if environment not in ctx.settings.digest_environments:
                continue
            revision = str(source.get("targetRevision", "HEAD"))
            if not _COMMIT.fullmatch(revision):
                yield Violation(
                    resource,
                    f"syncs {path}, a digest-pinned environment, from {revision}, which moves",
                )


RULES = (
    project_exists,
    sources_allowed,
    destinations_allowed,
    argocd_namespace,
    synced_objects_permitted,
    no_placeholder_digests,
    release_pinned,
)
