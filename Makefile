# The one entry point for people and CI. `make help` lists the targets.
SHELL := bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

ROOT := $(abspath .)
BIN := $(ROOT)/bin
export PATH := $(BIN):$(PATH)

# uv is the only thing installed outside the repo: from PyPI with the machine's python3.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

# Pinned tools, installed into ./bin with `go install`.
KUSTOMIZE_VERSION := v5.7.1
KUBECONFORM_VERSION := v0.7.0
# The Cloud Storage API on loopback for the workspace tests.
FAKE_GCS_SERVER_VERSION := v1.56.1
# Secret scanning of rendered objects in `gitops validate` (rules: .gitleaks.toml).
GITLEAKS_VERSION := v8.30.1

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

.PHONY: sync
sync: ## Install uv if missing and the locked Python environment
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked

# `make up PORT=8080` serves on another port.
PORT ?= 8000
# Debian packages are installed as root, or through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: up
up: sync sandbox ## Run the platform locally (SQLite, local runs) on http://127.0.0.1:$(PORT)
	$(UV) run agent-platform serve --port $(PORT)

# Local runs execute every tool command under bubblewrap (Debian's package), as Claude Code's
# sandbox does on Linux.
.PHONY: sandbox
sandbox:
	@command -v bwrap >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq bubblewrap; }

.PHONY: test
test: sync tools lint bench-quick ## Lint, check the benchmarks still run, then run every test
	$(UV) run pytest

.PHONY: lint
lint: sync ## ruff and mypy --strict over the sources, the tests and the benchmarks
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy apps/agent-platform/src apps/agent-runner/src scripts/gitops/src tests bench

.PHONY: validate
validate: sync $(BIN)/kustomize $(BIN)/kubeconform $(BIN)/psa $(BIN)/gitleaks ## Render every overlay and check schemas, policies and pipelines
	@mkdir -p test-output
	$(UV) run gitops validate --report junit=test-output/gitops-validate.xml
	$(UV) run gitops pipelines check

BASE ?= origin/main
.PHONY: diff
diff: sync $(BIN)/kustomize $(BIN)/kubeconform ## Show what changes in each environment against BASE (default origin/main)
	$(UV) run gitops diff --base $(BASE)

.PHONY: bench
bench: sync tools ## Run the benchmarks, judge their targets and compare with bench/baselines
	$(UV) run python -m bench

# Every benchmark at a size that takes seconds: it fails if one cannot run or report, so none
# rots between full runs. Its figures are not judged; only `make bench` judges the targets.
.PHONY: bench-quick
bench-quick: sync tools ## Check that every benchmark still runs and reports (seconds, not judged)
	$(UV) run python -m bench --quick

.PHONY: tools
tools: $(BIN)/kustomize $(BIN)/kubeconform $(BIN)/fake-gcs-server $(BIN)/gitleaks $(BIN)/psa browser sandbox cluster-tools agent-sandbox argocd-tools ## Install the pinned tools into ./bin

$(BIN)/kustomize:
	GOBIN=$(BIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

$(BIN)/kubeconform:
	GOBIN=$(BIN) go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)

$(BIN)/fake-gcs-server:
	GOBIN=$(BIN) nice go install github.com/fsouza/fake-gcs-server@$(FAKE_GCS_SERVER_VERSION)

$(BIN)/gitleaks:
	GOBIN=$(BIN) nice go install github.com/zricethezav/gitleaks/v8@$(GITLEAKS_VERSION)

# The upstream Pod Security admission evaluator at the cluster's release (tools/psa/go.mod).
$(BIN)/psa: tools/psa/go.mod tools/psa/go.sum tools/psa/main.go
	mkdir -p $(BIN)
	cd tools/psa && nice go build -buildvcs=false -trimpath -ldflags "-s -w" -o $(BIN)/psa .

# The Kubernetes control plane the cluster tests start on loopback: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl from the release pinned in
# tools/cluster/go.mod, plus kwok to give pods a lifecycle without a kubelet. The stamp names the
# versions, so a second run is a no-op and a version bump rebuilds.
CLUSTER_K8S_VERSION := v1.34.4
KWOK_VERSION := v0.7.0
CLUSTER_STAMP := $(BIN)/.cluster-tools-$(CLUSTER_K8S_VERSION)-kwok-$(KWOK_VERSION)
CLUSTER_LDFLAGS := -s -w \
	-X k8s.io/component-base/version.gitVersion=$(CLUSTER_K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=34 \
	-X k8s.io/component-base/version.gitTreeState=clean \
	-X k8s.io/client-go/pkg/version.gitVersion=$(CLUSTER_K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=34

.PHONY: cluster-tools
cluster-tools: $(CLUSTER_STAMP) ## Build the local Kubernetes control plane into ./bin

$(CLUSTER_STAMP): tools/cluster/go.mod tools/cluster/go.sum tools/cluster/etcd/main.go
	rm -f $(BIN)/.cluster-tools-*
	mkdir -p $(BIN)
	cd tools/cluster && nice go build -buildvcs=false -trimpath -ldflags "$(CLUSTER_LDFLAGS)" -o $(BIN)/ \
		./etcd \
		k8s.io/kubernetes/cmd/kube-apiserver \
		k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler \
		k8s.io/kubernetes/cmd/kubectl
	GOBIN=$(BIN) nice go install -trimpath -ldflags "-s -w" sigs.k8s.io/kwok/cmd/kwok@$(KWOK_VERSION)
	touch $@

# The agent-sandbox controller (SandboxTemplate, SandboxWarmPool, SandboxClaim) that GKE's Agent
# Sandbox add-on runs, built from its Go module, and the module's own CRDs next to it: the
# cluster tests run runs on warm pools against both. The stamp names the version, so a bump
# rebuilds and a second run is a no-op.
AGENT_SANDBOX_VERSION := v1.0.1
AGENT_SANDBOX_STAMP := $(BIN)/.agent-sandbox-$(AGENT_SANDBOX_VERSION)

.PHONY: agent-sandbox
agent-sandbox: $(AGENT_SANDBOX_STAMP) ## Build the agent-sandbox controller and fetch its CRDs into ./bin

$(AGENT_SANDBOX_STAMP):
	rm -f $(BIN)/.agent-sandbox-*
	GOBIN=$(BIN) nice go install sigs.k8s.io/agent-sandbox/cmd/agent-sandbox-controller@$(AGENT_SANDBOX_VERSION)
	rm -rf $(BIN)/agent-sandbox-crds && mkdir -p $(BIN)/agent-sandbox-crds
	cp "$$(go mod download -json sigs.k8s.io/agent-sandbox@$(AGENT_SANDBOX_VERSION) | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"/k8s/crds/*.yaml $(BIN)/agent-sandbox-crds/
	chmod u+w $(BIN)/agent-sandbox-crds/*.yaml
	touch $@

# Argo CD for the GitOps loop tests, from the release pinned in tools/argocd/go.mod (the one the
# bootstrap installs): a multi-call binary that is the application controller, repo server or
# CLI by the name it runs under, and Debian's Redis as its cache. The stamp names the version.
ARGOCD_VERSION := v3.2.6
ARGOCD_STAMP := $(BIN)/.argocd-$(ARGOCD_VERSION)
ARGOCD_LDFLAGS := -s -w \
	-X github.com/argoproj/argo-cd/v3/common.version=$(ARGOCD_VERSION:v%=%) \
	-X github.com/argoproj/argo-cd/v3/common.gitTag=$(ARGOCD_VERSION) \
	-X github.com/argoproj/argo-cd/v3/common.gitTreeState=clean

.PHONY: argocd-tools
argocd-tools: $(ARGOCD_STAMP) redis ## Build Argo CD into ./bin and install Redis

$(ARGOCD_STAMP): tools/argocd/go.mod tools/argocd/go.sum
	rm -f $(BIN)/.argocd-*
	mkdir -p $(BIN)
	cd tools/argocd && nice go build -buildvcs=false -trimpath -ldflags "$(ARGOCD_LDFLAGS)" \
		-o $(BIN)/argocd github.com/argoproj/argo-cd/v3/cmd
	touch $@

.PHONY: redis
redis:
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

# Debian's Chromium drives the dashboard tests; Playwright's own browser download cannot work
# offline.
.PHONY: browser
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; }

# The README's picture is the workspace screen the browser tests take; refreshing it is a
# deliberate step, so a test run never changes a tracked file.
.PHONY: screenshot
screenshot: sync browser ## Retake the README's workspace screenshot (docs/img/workspace.png)
	$(UV) run pytest tests/agent_platform/test_dashboard_browser.py -q
	cp test-output/screenshots/workspace.png docs/img/workspace.png
