"""`gitops cost` and the cost line of `gitops diff`, from real kustomize renders of the overlays."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from gitops import prices
from gitops.cli import main
from gitops.cost import CostError, Requests, environment_cost, pod_requests
from gitops.manifests import parse

Git = Callable[..., str]
HOURS = 730


def _render(kustomize: str, overlay: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kustomize, "build", str(overlay)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    [found] = [doc for doc in docs if doc["kind"] == kind]
    return found


def _amount(value: str) -> float:
    """An independent reading of the quantities these manifests use, in cores or GiB."""
    units = {"m": 1e-3, "Mi": 1 / 1024, "Gi": 1.0, "": 1.0}
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", value)
    assert match, value
    return float(match.group(1)) * units[match.group(2)]


def _hourly(requests: dict[str, str], price: prices.RegionPrices) -> float:
    return (
        _amount(requests["cpu"]) * price.vcpu_hour
        + _amount(requests["memory"]) * price.memory_gib_hour
        + _amount(requests["ephemeral-storage"]) * price.ephemeral_storage_gib_hour
    )


def _dollars(out: str, label: str) -> float:
    match = re.search(rf"{label}\s+\$([0-9,.]+)", out)
    assert match, f"no {label} figure in:\n{out}"
    return float(match.group(1).replace(",", ""))


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_each_environment_costs_its_rendered_requests_at_its_regions_prices(
    environment: str, repo_root: Path, kustomize: str, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _render(kustomize, repo_root / "overlays" / environment)
    region = next(d["data"]["GCP_REGION"] for d in docs if d["kind"] == "ConfigMap")
    price = prices.load().for_region(region)
    autoscaler = _one(docs, "HorizontalPodAutoscaler")["spec"]
    [api] = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    [runner] = _one(docs, "PodTemplate")["template"]["spec"]["containers"]
    quota = _one(docs, "ResourceQuota")["spec"]["hard"]
    api_hour = _hourly(api["resources"]["requests"], price)
    run_hour = _hourly(runner["resources"]["requests"], price)
    run_requests = runner["resources"]["requests"]
    at_once = min(
        int(quota["pods"]),
        *(int(_amount(quota[f"requests.{k}"]) / _amount(run_requests[k])) for k in run_requests),
    )

    code = main(["--root", str(repo_root), "cost", environment])
    out = capsys.readouterr().out

    assert code == 0
    assert f"== {environment}: {region}" in out
    assert _dollars(out, "at rest") == pytest.approx(
        autoscaler["minReplicas"] * api_hour * HOURS, abs=0.005
    )
    assert _dollars(out, "under load") == pytest.approx(
        (autoscaler["maxReplicas"] * api_hour + at_once * run_hour) * HOURS, abs=0.005
    )
    assert _dollars(out, "per run-hour") == pytest.approx(run_hour, abs=0.0005)
    assert f"{at_once} runs at once" in out


def test_without_an_environment_every_overlay_is_priced(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repo_root), "cost"])
    out = capsys.readouterr().out

    assert code == 0
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("==")] == [
        "== dev",
        "== prod",
    ]
    # Seoul's own figures are not in the table: every figure says whose prices stand in.
    assert "asia-northeast3 at asia-east1's list prices" in out


def test_an_unknown_environment_is_a_usage_error_naming_the_known_ones(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--root", str(repo_root), "cost", "staging"])

    assert code == 2
    assert "no environment staging (known: dev, prod)" in capsys.readouterr().err


@pytest.fixture
def platform_repo(tmp_path: Path, repo_root: Path, git: Git) -> Path:
    """A git repository holding a copy of this one's apps, overlays and gitops.yaml."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("apps", "overlays", "bin"):
        shutil.copytree(repo_root / name, root / name, symlinks=True)
    shutil.copy2(repo_root / "gitops.yaml", root / "gitops.yaml")
    (root / ".gitignore").write_text("bin/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def test_the_pr_comment_shows_what_a_change_does_to_each_environments_cost(
    platform_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    patch = platform_repo / "overlays/prod/patch-horizontalpodautoscaler-replicas.yaml"
    patch.write_text(patch.read_text().replace("minReplicas: 2", "minReplicas: 3"))
    at_rest_after = _prod_at_rest(platform_repo, capsys)

    code = main(["--root", str(platform_repo), "diff", "--base", "HEAD", "--format", "markdown"])
    out = capsys.readouterr().out

    assert code == 0
    dev, prod = out.split("#### prod")[0].split("#### dev")[1], out.split("#### prod")[1]
    assert "at rest $23.00 a month (unchanged)" in dev
    # One more API pod all month: a third of what three now cost.
    assert f"(+${at_rest_after / 3:,.2f})" in prod.split("under load")[0]
    assert "(unchanged)" in prod.split("under load")[1].split(",")[0]
    assert prod.index("**Cost**") < prod.index("HorizontalPodAutoscaler")


def _prod_at_rest(root: Path, capsys: pytest.CaptureFixture[str]) -> float:
    assert main(["--root", str(root), "cost", "prod"]) == 0
    return _dollars(capsys.readouterr().out, "at rest")


def test_an_environment_that_names_no_region_is_reported_in_the_comment_not_fatal(
    platform_repo: Path, git: Git, capsys: pytest.CaptureFixture[str]
) -> None:
    environment = platform_repo / "overlays/dev/platform-environment.yaml"
    environment.write_text(environment.read_text().replace("GCP_REGION", "GCP_ZONE"))

    code = main(["--root", str(platform_repo), "diff", "--base", "HEAD", "--format", "markdown"])
    out = capsys.readouterr().out

    assert code == 0
    assert "**Cost**: not priced: dev: no ConfigMap names GCP_REGION" in out
    assert "**Cost** (asia-northeast3" in out.split("#### prod")[1]


def test_a_pod_is_billed_for_its_containers_or_its_largest_init_container() -> None:
    spec = {
        "initContainers": [{"resources": {"requests": {"cpu": "2", "memory": "512Mi"}}}],
        "containers": [
            {"resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
            {"resources": {"requests": {"cpu": "250m", "ephemeral-storage": "2Gi"}}},
        ],
    }

    assert pod_requests(spec) == Requests(cpu=2.0, memory_gib=1.0, ephemeral_gib=2.0)


def test_a_region_missing_from_the_table_names_the_table_and_its_source() -> None:
    table = prices.load()
    resources = parse(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env}\ndata: {GCP_REGION: mars-north1}\n",
        "test",
    )

    with pytest.raises(CostError, match=r"no Autopilot prices for mars-north1 in autopilot-prices"):
        environment_cost("dev", resources, table)


def test_a_stand_in_must_have_figures_of_its_own() -> None:
    table = prices.load(
        "source: https://cloud.google.com/kubernetes-engine/pricing\n"
        "hours_per_month: 730\ncluster_fee_per_hour: 0.1\n"
        "regions:\n  a: {priced_as: b}\n  b: {priced_as: a}\n"
    )

    with pytest.raises(prices.PriceError, match="has no figures of its own"):
        table.for_region("a")


def test_the_shipped_table_is_dated_and_sourced_for_every_region_it_prices() -> None:
    table = prices.load()

    assert table.source == "https://cloud.google.com/kubernetes-engine/pricing"
    for region in table.regions:
        price = table.for_region(region)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.as_of)
        assert 0 < price.ephemeral_storage_gib_hour < price.memory_gib_hour < price.vcpu_hour


def test_the_readme_states_what_gitops_cost_prints(
    repo_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (repo_root / "README.md").read_text()

    for environment in ("dev", "prod"):
        assert main(["--root", str(repo_root), "cost", environment]) == 0
        out = capsys.readouterr().out
        row = re.search(rf"^\| {environment} .*$", readme, re.M)
        assert row, f"README's cost table has no {environment} row"
        stated = [float(x.replace(",", "")) for x in re.findall(r"\$([0-9,.]+[0-9])", row.group(0))]
        printed = [_dollars(out, label) for label in ("at rest", "under load", "per run-hour")]
        assert stated == printed, f"README says {stated}, gitops cost prints {printed}"


REGION = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: env}\ndata: {GCP_REGION: asia-east1}\n"
RUN_TEMPLATE = """\
apiVersion: v1
kind: PodTemplate
metadata: {name: runner, namespace: runs}
template:
  spec:
    containers:
      - name: runner
        resources: {requests: {cpu: 500m, memory: 2Gi, ephemeral-storage: 2Gi}}
"""


def test_runs_no_quota_bounds_are_left_out_of_the_load_figure_and_said_to_be() -> None:
    resources = parse(f"{REGION}---\n{RUN_TEMPLATE}", "test")

    cost = environment_cost("dev", resources, prices.load())

    assert cost.runs[0].ceiling is None
    assert cost.under_load == 0
    assert cost.run_hour > 0


def test_the_tightest_quota_limit_decides_how_many_runs_fit() -> None:
    quota = (
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q, namespace: runs}\n"
        "spec: {hard: {pods: '10', requests.cpu: '4', requests.memory: 7Gi}}\n"
    )
    resources = parse(f"{REGION}---\n{RUN_TEMPLATE}---\n{quota}", "test")

    cost = environment_cost("dev", resources, prices.load())

    # 10 pods, 8 by CPU, but only 3 runs of 2Gi fit in 7Gi of memory.
    assert cost.runs[0].ceiling == 3


def test_a_replica_count_that_is_not_a_number_is_a_clear_error() -> None:
    deployment = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api, namespace: p}\n"
        "spec: {replicas: two, template: {spec: {containers: []}}}\n"
    )
    resources = parse(f"{REGION}---\n{deployment}", "test")

    with pytest.raises(CostError, match="Deployment p/api replicas is 'two'"):
        environment_cost("dev", resources, prices.load())
