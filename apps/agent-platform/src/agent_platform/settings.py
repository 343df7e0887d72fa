"""Every setting of the platform, read from the environment (prefix `AGENT_PLATFORM_`) or `.env`.

`.env.example` at the repository root documents each one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_PLATFORM_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    store: Literal["sqlite", "firestore"] = "sqlite"
    # Defaults to `<data_dir>/platform.db`.
    sqlite_path: Path = Path(".data/platform.db")
    gcp_project: str | None = None

    executor: Literal["local", "kubernetes", "agent-sandbox"] = "local"
    # How the local executor confines each tool command of a run: bubblewrap, or `none` to opt
    # out deliberately (then said at start, in /healthz and on the dashboard).
    local_sandbox: Literal["bubblewrap", "none"] = "bubblewrap"
    # The command the local executor starts for each run, as a JSON list in the environment.
    runner_command: list[str] = Field(
        default_factory=lambda: [sys.executable, "-m", "agent_runner"]
    )
    # How long a cancelled sandbox gets between SIGTERM and SIGKILL.
    cancel_grace_seconds: float = Field(default=10.0, gt=0)
    runs_namespace: str = "agent-runs"
    runner_template: str = "agent-runner"
    # The agent-sandbox executor's SandboxWarmPool in the runs namespace.
    warm_pool: str = "agent-runner"
    # The kubernetes executor's cluster: this kubeconfig file if set, else in-cluster config.
    kubeconfig: Path | None = None
    max_concurrent_runs: int = Field(default=4, ge=1)
    # A replica renews the lease of its running runs every third of this; a run whose lease
    # ran out lost its replica, and another replica finishes it.
    run_lease_seconds: float = Field(default=30.0, gt=0)

    blob_store: Literal["local", "gcs"] = "local"
    gcs_bucket: str | None = None
    # The largest workspace archive an agent may keep; a bigger upload is refused with 413.
    workspace_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    # What a workspace may unpack to: the sum of its files' sizes and how many entries (files,
    # folders, links) it has. A small archive can hold a huge file of zeros, so the archive's
    # size alone bounds neither the sandbox's disk nor the time a listing takes.
    workspace_max_unpacked_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    workspace_max_files: int = Field(default=100_000, ge=1)

    # The URL runners use to reach this API; defaults to http://<host>:<port>.
    public_url: str = "http://127.0.0.1:8000"

    anthropic_api_key: SecretStr | None = None
    # A mounted Secret holding the key: an alternative to `anthropic_api_key`.
    anthropic_api_key_file: Path | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    default_model: str = "claude-sonnet-4-5"

    # API request bodies above this size are refused with 413 before they are read; workspace
    # uploads are held to `workspace_max_bytes` instead, the LLM gateway to the next one.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # A long conversation through the LLM gateway may outgrow any API body by far; Anthropic's
    # API takes requests up to 32 MB, so a longer one could not go upstream anyway.
    gateway_max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # The browser session a one-time login URL opens.
    session_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    login_code_ttl_seconds: int = Field(default=15 * 60, ge=10)
    # Print a one-time login URL for the local admin at start (the laptop path). Only ever with
    # the SQLite store on a loopback address: elsewhere the output is shared logs.
    print_login_url: bool = True
    # Behind Google IAP: the audience of its signed header, /projects/<project number>/global/
    # backendServices/<id>. Set, the header's verified user signs the request in; unset (or
    # empty), the header is ignored.
    iap_audience: str | None = None
    # Where IAP's public keys are published, as a JWK set.
    iap_keys_url: str = "https://www.gstatic.com/iap/verify/public_key-jwk"

    @model_validator(mode="before")
    @classmethod
    def _derive_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if not data.get("iap_audience"):
            data["iap_audience"] = None
        if not data.get("sqlite_path"):
            data["sqlite_path"] = Path(data.get("data_dir") or ".data") / "platform.db"
        if not data.get("public_url"):
            host = data.get("host") or "127.0.0.1"
            if host in ("0.0.0.0", "::"):  # noqa: S104 - reaching a wildcard bind via loopback
                host = "127.0.0.1"
            data["public_url"] = f"http://{host}:{data.get('port') or 8000}"
        return data

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        # Runners start in a directory of their own: a relative path would name another place.
        self.data_dir = self.data_dir.absolute()
        self.sqlite_path = self.sqlite_path.absolute()
        if self.kubeconfig is not None:
            self.kubeconfig = self.kubeconfig.absolute()
        if self.anthropic_api_key_file is not None:
            self.anthropic_api_key_file = self.anthropic_api_key_file.absolute()
        return self

    def anthropic_key(self) -> SecretStr | None:
        """The Anthropic key, from the environment or from the mounted key file."""
        if self.anthropic_api_key is not None:
            return self.anthropic_api_key
        if self.anthropic_api_key_file is not None:
            return SecretStr(self.anthropic_api_key_file.read_text().strip())
        return None
