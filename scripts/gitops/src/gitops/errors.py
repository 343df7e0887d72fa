"""The one base class of every error the `gitops` tool raises on purpose.

A caller catches `GitopsError` and knows the tool could not do its job; the message says what to
do next. The CLI maps it to exit code 2. Each module defines its own subclass next to the code
that raises it, like httpx's exceptions:

    GitopsError
    ├── ConfigError            gitops.config
    ├── TargetError            gitops.targets
    ├── ToolMissing            gitops.toolchain
    ├── SchemaSetupError       gitops.schemas
    ├── ManifestError          gitops.manifests
    │   └── UnreadableManifest gitops.render
    ├── PodSecurityError       gitops.policy.pss
    ├── SecretScanError        gitops.leaks
    ├── GitError               gitops.snapshot
    ├── ImageReferenceError    gitops.imagerefs
    ├── KustomizationError     gitops.kustomization_images
    ├── QuantityError          gitops.quantity
    ├── IndexFileError         gitops.firestore_indexes
    ├── CloudNameError         gitops.bootstrap.plan
    ├── BootstrapError         gitops.bootstrap.shell
    ├── UnreadableFileError    gitops.pipelines.check
    └── GitHubError            gitops.pipelines.github
"""

from __future__ import annotations


class GitopsError(Exception):
    """The tool could not do its job; the message says what to do next."""
