"""One typed settings object, read from the environment (prefix-free names).

Environment variables win over defaults; explicit keyword arguments to
``Settings(...)`` win over the environment (used by tests and the CLI).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """Where closedloop keeps its SQLite database and artefacts by default."""
    return Path.cwd() / ".closedloop"


class Settings(BaseSettings):
    """Runtime configuration of closedloop (see the table in README.md)."""

    # Case-sensitive: with populate_by_name a field name such as `home` would otherwise also match
    # an unrelated variable (HOME); every setting is read from its upper-case name only.
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True,
                                      case_sensitive=True)

    database_url: str = Field(
        default="",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the store; empty means sqlite:///<CLOSEDLOOP_HOME>/closedloop.db",
    )
    home: Path = Field(default_factory=default_home, validation_alias="CLOSEDLOOP_HOME")

    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_model: str = Field(default="gpt-4o-mini", validation_alias="CLOSEDLOOP_MODEL")
    model_max_retries: int = Field(default=1, ge=0, le=5, validation_alias="CLOSEDLOOP_MODEL_RETRIES")

    sandbox_url: str | None = Field(
        default=None,
        validation_alias="CLOSEDLOOP_SANDBOX_URL",
        description="Base URL of the enterprise (sandbox) API; empty starts a sandbox on loopback",
    )
    sandbox_token: SecretStr | None = Field(default=None, validation_alias="CLOSEDLOOP_SANDBOX_TOKEN")
    connector: str = Field(
        default="",
        validation_alias="CLOSEDLOOP_CONNECTOR",
        description="Connector the loop reaches its system through: a manifest file, a folder with "
                    "connector.yaml, an annotated OpenAPI file, or a bundled domain name "
                    "(helpdesk, o2c); empty means the bundled helpdesk connector",
    )
    api_timeout_s: float = Field(default=10.0, gt=0, validation_alias="CLOSEDLOOP_API_TIMEOUT")
    api_retries: int = Field(default=3, ge=0, le=10, validation_alias="CLOSEDLOOP_API_RETRIES")

    bottleneck_threshold_hours: float | None = Field(
        default=None, gt=0, validation_alias="CLOSEDLOOP_BOTTLENECK_HOURS",
        description="absolute bottleneck threshold (mean wait, hours); unset: relative to the log",
    )
    min_predicted_improvement_pct: float = Field(
        default=5.0, ge=0, validation_alias="CLOSEDLOOP_MIN_IMPROVEMENT_PCT",
        description="Planner drops plans whose predicted cycle-time reduction is below this",
    )
    canary_share: float = Field(default=0.5, gt=0, le=1, validation_alias="CLOSEDLOOP_CANARY_SHARE")
    simulation_replications: int = Field(default=5, ge=2, le=100, validation_alias="CLOSEDLOOP_SIM_REPLICATIONS")
    simulation_cases: int = Field(default=600, ge=50, validation_alias="CLOSEDLOOP_SIM_CASES")
    prediction_days: float = Field(
        default=14.0, ge=0, validation_alias="CLOSEDLOOP_PREDICTION_DAYS",
        description="Planner predicts each change over the cases arriving in this many days after "
                    "the log's end, from its open cases (default 14: the demo's observe window, "
                    "what the Watchdog measures); 0 predicts the steady state of "
                    "CLOSEDLOOP_SIM_CASES cases from an empty system",
    )
    seed: int = Field(default=7, validation_alias="CLOSEDLOOP_SEED")
    default_scope: str = Field(default="helpdesk", validation_alias="CLOSEDLOOP_SCOPE")
    default_mode: str = Field(
        default="assisted", pattern="^(shadow|assisted|supervised)$", validation_alias="CLOSEDLOOP_MODE"
    )
    teams_webhook_secret: SecretStr | None = Field(default=None, validation_alias="CLOSEDLOOP_TEAMS_SECRET")
    snapshot_key: SecretStr | None = Field(
        default=None, validation_alias="CLOSEDLOOP_SNAPSHOT_KEY",
        description="Fernet key: dataset snapshots are written encrypted and read back with it "
                    "(closedloop.tools.log.snapshot); unset writes plain parquet",
    )

    # -- who may do what on the surfaces (closedloop.identity; docs/api.md "Authentication") --
    api_keys: str = Field(
        default="", validation_alias="CLOSEDLOOP_API_KEYS",
        description="API keys as 'name:role+role:sha256hex' entries separated by ';' (only hashes, "
                    "never keys); empty uses <CLOSEDLOOP_HOME>/api-keys.json, created with one "
                    "dev admin key on first start",
    )
    oauth_issuer: str = Field(default="", validation_alias="CLOSEDLOOP_OAUTH_ISSUER",
                              description="issuer of accepted OAuth2 bearer JWTs (empty: none)")
    oauth_audience: str = Field(default="", validation_alias="CLOSEDLOOP_OAUTH_AUDIENCE")
    oauth_jwks_url: str = Field(default="", validation_alias="CLOSEDLOOP_OAUTH_JWKS_URL")
    oauth_roles_claim: str = Field(default="roles", validation_alias="CLOSEDLOOP_OAUTH_ROLES_CLAIM")
    teams_app_id: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_APP_ID",
                              description="Bot Framework app id: the audience of incoming bot JWTs")
    teams_app_password: SecretStr | None = Field(default=None, validation_alias="CLOSEDLOOP_TEAMS_APP_PASSWORD")
    teams_openid_url: str = Field(
        default="https://login.botframework.com/v1/.well-known/openidconfiguration",
        validation_alias="CLOSEDLOOP_TEAMS_OPENID_URL")
    teams_issuer: str = Field(default="https://api.botframework.com", validation_alias="CLOSEDLOOP_TEAMS_ISSUER")
    teams_token_url: str = Field(
        default="https://login.microsoftonline.com/botframework.com/oauth2/v2.0/token",
        validation_alias="CLOSEDLOOP_TEAMS_TOKEN_URL")
    teams_service_url: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_SERVICE_URL",
                                   description="Bot Connector URL new approval cards are posted to")
    teams_conversation: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_CONVERSATION")
    teams_approvers: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_APPROVERS",
                                 description="Teams user ids (29:...) or AAD object ids, comma-separated")
    teams_admins: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_ADMINS")
    teams_analysts: str = Field(default="", validation_alias="CLOSEDLOOP_TEAMS_ANALYSTS")
    teams_press_window_s: float = Field(default=300.0, gt=0, validation_alias="CLOSEDLOOP_TEAMS_PRESS_WINDOW_S",
                                        description="a card press older or newer than this is refused")

    def resolved_database_url(self) -> str:
        """The store URL, defaulting to a SQLite file under ``home``."""
        if self.database_url:
            if self.database_url.startswith("sqlite:///"):
                from sqlalchemy.engine import make_url

                path = make_url(self.database_url).database
                if path and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
            return self.database_url
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)  # owner-only: the store and keys
        return f"sqlite:///{(self.home / 'closedloop.db').resolve()}"

    def secret_env(self) -> dict[str, str]:
        """The environment connector auth reads its secrets from, with secrets given to these
        settings (the sandbox token) on top."""
        import os

        env = dict(os.environ)
        if self.sandbox_token is not None:
            env["CLOSEDLOOP_SANDBOX_TOKEN"] = self.sandbox_token.get_secret_value()
        return env

    @property
    def uses_llm(self) -> bool:
        """True when a real OpenAI-compatible model is configured."""
        return self.openai_api_key is not None or self.openai_base_url is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings read once from the environment."""
    return Settings()
