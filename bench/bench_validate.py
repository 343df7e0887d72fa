"""`gitops validate` against the bare `kustomize build | kubeconform -strict` pipeline.

A generated corpus of 200 apps x 2 environments (400 overlays, each rendering a ServiceAccount,
Deployment, Service, HPA, PDB and the environment ConfigMap) is validated both ways: by the
bare pipeline, one `kustomize build | kubeconform -strict` per overlay run with the same
parallelism, and by `gitops validate` with the whole policy catalogue. Targets: the ratio is at
most 1.2, and `gitops validate` on this repository takes under 2 s.

Beside the speed, the false-positive rate: the share of findings on the corpus of
real-world-shaped repositories (tests/corpus) whose expected verdict is "wrong" or that have no
verdict yet. Target: none.

Run: `python -m bench validate`; with `--quick`, 2 apps and one round each way.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corpus.review import review
from gitops.schemas import kubernetes_schemas, schema_locations
from gitops.toolchain import find_tool

ROOT = Path(__file__).resolve().parents[1]

ENVIRONMENTS = {"dev": "bench-dev-001", "prod": "bench-prod-001"}
TARGET_RATIO = 1.2
TARGET_REPO_SECONDS = 2.0
APPS = 200
ROUNDS = 3
REPOSITORY_ROUNDS = 5
QUICK_APPS = 2
DIGEST = "sha256:" + "5" * 64

BASE = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
labels:
  - pairs: {{app.kubernetes.io/name: {app}}}
    includeSelectors: true
    includeTemplates: true
resources: [serviceaccount.yaml, deployment.yaml, service.yaml, hpa.yaml, pdb.yaml]
"""
SERVICE_ACCOUNT = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {app}}}\n"
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {app}}}
spec:
  selector: {{matchLabels: {{component: api}}}}
  template:
    metadata: {{labels: {{component: api}}}}
    spec:
      serviceAccountName: {app}
      nodeSelector: {{kubernetes.io/arch: amd64}}
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        seccompProfile: {{type: RuntimeDefault}}
      containers:
        - name: api
          image: {app}
          envFrom: [{{configMapRef: {{name: platform-environment}}}}]
          env: [{{name: AGENT_PLATFORM_STORE, value: firestore}}]
          ports: [{{name: http, containerPort: 8000}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}
          resources:
            requests: {{cpu: 250m, memory: 512Mi}}
            limits: {{cpu: 250m, memory: 512Mi}}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {{drop: [ALL]}}
"""
SERVICE = """\
apiVersion: v1
kind: Service
metadata: {{name: {app}}}
spec:
  selector: {{component: api}}
  ports: [{{name: http, port: 80, targetPort: http}}]
"""
HPA = """\
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {app}}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {app}}}
  minReplicas: 2
  maxReplicas: 6
  metrics:
    - type: Resource
      resource: {{name: cpu, target: {{type: Utilization, averageUtilization: 70}}}}
"""
PDB = """\
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: {app}}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{component: api}}}}
"""
OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: agent-platform
resources: [../../apps/{app}/base]
configMapGenerator:
  - name: platform-environment
    options: {{disableNameSuffixHash: true}}
    literals:
      - ENVIRONMENT={env}
      - GCP_PROJECT={project}
      - GCP_REGION=asia-northeast3
      - HOST={app}.{env}.example.com
images:
  - name: {app}
    newName: asia-northeast3-docker.pkg.dev/{project}/apps/{app}
    {pin}
patches:
  - patch: |-
      apiVersion: v1
      kind: ServiceAccount
      metadata:
        name: {app}
        annotations:
          iam.gke.io/gcp-service-account: {app}@{project}.iam.gserviceaccount.com
"""


def write_corpus(root: Path, apps: int) -> list[Path]:
    """The corpus repository under `root`; returns its overlay directories."""
    (root / "gitops.yaml").write_text('kubernetesVersion: "1.34"\ncomponents: []\n')
    (root / "bin").symlink_to(ROOT / "bin")  # the pinned tools, found as in the repository
    overlays = []
    for number in range(apps):
        app = f"app-{number:03d}"
        base = root / "apps" / app / "base"
        base.mkdir(parents=True)
        for name, template in (
            ("kustomization.yaml", BASE),
            ("serviceaccount.yaml", SERVICE_ACCOUNT),
            ("deployment.yaml", DEPLOYMENT),
            ("service.yaml", SERVICE),
            ("hpa.yaml", HPA),
            ("pdb.yaml", PDB),
        ):
            (base / name).write_text(template.format(app=app))
        for env, project in ENVIRONMENTS.items():
            overlay = root / "overlays" / f"{app}-{env}"
            overlay.mkdir(parents=True)
            pin = f"digest: {DIGEST}" if env == "prod" else f'newTag: "1.0.{number}"'
            (overlay / "kustomization.yaml").write_text(
                OVERLAY.format(app=app, env=env, project=project, pin=pin)
            )
            overlays.append(overlay)
    return overlays


def bare_pipeline(overlays: list[Path], locations: list[str], jobs: int) -> None:
    """`kustomize build DIR | kubeconform -strict` for every overlay, `jobs` at a time."""
    kustomize, kubeconform = find_tool("kustomize", ROOT), find_tool("kubeconform", ROOT)
    flags = " ".join(f"-schema-location '{location}'" for location in locations)

    def one(overlay: Path) -> None:
        script = f"'{kustomize}' build '{overlay}' | '{kubeconform}' -strict {flags} -"
        subprocess.run(["bash", "-o", "pipefail", "-c", script], check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(one, overlays))


def gitops_validate(root: Path) -> None:
    """The whole `gitops validate`, as a fresh process, as Cloud Build runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "gitops", "--root", str(root), "validate", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout) if done.stdout.startswith("{") else None
    if done.returncode != 0 or report is None or not report["clean"]:
        raise RuntimeError(f"gitops validate on {root} is not clean:\n{done.stdout}{done.stderr}")


@dataclass(frozen=True)
class Timing:
    wall: float  # median seconds
    cpu: float  # median CPU seconds of the child processes (user + system)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure(action: Callable[[], None]) -> tuple[float, float]:
    cpu, start = _children_cpu(), time.perf_counter()
    action()
    return time.perf_counter() - start, _children_cpu() - cpu


def timed(actions: list[Callable[[], None]], rounds: int, warm_up: bool = True) -> list[Timing]:
    """Median wall and CPU time of each action over `rounds`, after one warm-up run each.

    The actions take turns within each round (in alternating order), so a change in the
    machine's load during the benchmark weighs on all of them alike; CPU time is reported too
    because load moves wall time, not CPU time.
    """
    for action in actions if warm_up else []:
        action()
    samples: list[list[tuple[float, float]]] = [[] for _ in actions]
    for round_ in range(rounds):
        order = list(range(len(actions)))
        for index in order if round_ % 2 == 0 else reversed(order):
            samples[index].append(_measure(actions[index]))
    return [
        Timing(statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
        for runs in samples
    ]


def false_positives() -> dict[str, Any]:
    """The corpus findings by verdict and the share that is wrong or unjudged."""
    result = review()
    counts = result.counts
    false = counts["wrong"] + counts["unjudged"]
    total = sum(counts.values())
    return {
        "findings": total,
        "correct": counts["correct"],
        "defensible": counts["defensible"],
        "wrong": counts["wrong"],
        "unjudged": counts["unjudged"],
        "false_positive_rate": round(false / total, 4) if total else 0.0,
    }


def run(quick: bool = False) -> dict[str, Any]:
    apps = QUICK_APPS if quick else APPS
    rounds = 1 if quick else ROUNDS
    corpus = false_positives()
    jobs = os.cpu_count() or 2
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as scratch:
        generated = Path(scratch)
        overlays = write_corpus(generated, apps)
        locations = schema_locations(kubernetes_schemas("1.34"), generated / "schemas" / "crds")
        bare, ours = timed(
            [lambda: bare_pipeline(overlays, locations, jobs), lambda: gitops_validate(generated)],
            rounds,
            warm_up=not quick,
        )
    [repo] = timed(
        [lambda: gitops_validate(ROOT)], 1 if quick else REPOSITORY_ROUNDS, warm_up=not quick
    )
    ratio = ours.wall / bare.wall
    return {
        "overlays": len(overlays),
        "jobs": jobs,
        "load_average": round(os.getloadavg()[0], 2),
        "bare_pipeline": {"wall_seconds": round(bare.wall, 3), "cpu_seconds": round(bare.cpu, 3)},
        "gitops_validate": {"wall_seconds": round(ours.wall, 3), "cpu_seconds": round(ours.cpu, 3)},
        "ratio": round(ratio, 3),
        "cpu_ratio": round(ours.cpu / bare.cpu, 3),
        "repository": {"wall_seconds": round(repo.wall, 3), "cpu_seconds": round(repo.cpu, 3)},
        "corpus": corpus,
        "targets": {
            "no wrong or unjudged finding on the corpus": corpus["false_positive_rate"] == 0,
            f"gitops validate within {TARGET_RATIO}x the bare pipeline": ratio <= TARGET_RATIO,
            f"gitops validate on this repository under {TARGET_REPO_SECONDS:g} s": (
                repo.wall < TARGET_REPO_SECONDS
            ),
        },
    }
