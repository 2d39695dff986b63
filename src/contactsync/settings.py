"""Settings, read from the environment (prefix ``CONTACTSYNC_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/contactsync.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTACTSYNC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the hub's database: SQLite (default) or PostgreSQL.",
    )
    host: str = Field("127.0.0.1", description="Address `contactsync serve` listens on.")
    port: int = Field(8000, description="Port `contactsync serve` listens on.")
    public_url: str = Field(
        "", description="URL the service is reached at, used in links; default http://HOST:PORT."
    )
    sqlite_cache_mb: int = Field(256, description="SQLite page cache per connection, in MB.")
    batch_size: int = Field(5000, description="Customers written per transaction in bulk work.")
    default_page_size: int = Field(10, description="Customers per page when `size` is not given.")
    max_page_size: int = Field(1000, description="Largest `size` the customer list accepts.")
    max_updates_page: int = Field(4000, description="Largest `size` of the updates feed.")
    secret_keys: str = Field(
        "",
        description="Fernet keys that encrypt source credentials, comma-separated: the first encrypts, "
        "all decrypt (rotation: put the new key first and keep the old ones). "
        "When empty, a key is created in `secret_key_file`.",
    )
    secret_key_file: str = Field(
        "./var/secret.key", description="Where the generated key lives when `secret_keys` is empty."
    )

    smtp_host: str = Field(
        "", description="SMTP server for confirmation emails and reports; empty: no email is sent."
    )
    smtp_port: int = Field(25, description="SMTP server port (587 with STARTTLS, 465 with implicit TLS).")
    smtp_security: str = Field(
        "none", description="`none`, `starttls` (upgrade after connecting) or `tls` (implicit TLS, port 465)."
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password (only from the environment or `.env`).")
    smtp_from: str = Field("contactsync@localhost", description="Sender address of every email.")
    smtp_timeout: float = Field(30.0, description="Seconds to wait for the SMTP server.")

    exchange_local_root: str = Field(
        "./var/exchange",
        description="Folder that `file://` exchange endpoints must lie under (relative to the working "
        "directory); SQLite client databases must lie under it too.",
    )
    exchange_max_line_bytes: int = Field(
        1_048_576,
        ge=64,
        description="Longest line (CSV) or record (XML) an exchange file may hold, in bytes; "
        "a longer one rejects the whole file (E601).",
    )
    exchange_connect_timeout: float = Field(
        30.0, description="Seconds to wait for an SFTP server or a client database to answer."
    )

    webhook_timeout_s: float = Field(10.0, description="Seconds a webhook receiver has to answer.")
    webhook_backoff_s: float = Field(
        30.0, description="Delay before the first webhook retry; it doubles per attempt (with jitter)."
    )
    webhook_backoff_max_s: float = Field(3600.0, description="Longest delay between two webhook retries.")
    webhook_retry_hours: float = Field(
        24.0, description="How long a webhook delivery is retried before it is marked failed."
    )
    webhook_concurrency: int = Field(4, ge=1, description="Webhook deliveries sent in parallel.")
    webhook_poll_s: float = Field(
        1.0, description="Seconds between two looks at the outbox and the inbound queue when idle."
    )
    inbound_max_age_s: float = Field(
        5400.0,
        description="Inbound provider events with an older (or future) timestamp are refused; the default "
        "outlasts Mailchimp's 75 minutes of retries. Replays are refused by event id at any age.",
    )
    optin_expiry_hours: float = Field(
        48.0, description="Hours a double opt-in confirmation link stays valid."
    )

    scheduler_tick_seconds: float = Field(
        5.0, gt=0, description="Seconds between two looks of the scheduler at schedules and sources."
    )
    worker_threads: int = Field(2, ge=1, description="Runs a worker process executes at the same time.")
    worker_poll_seconds: float = Field(1.0, gt=0, description="Seconds an idle worker waits between looks.")
    worker_heartbeat_seconds: float = Field(
        10.0, gt=0, description="Seconds between two heartbeats of a worker on the request it runs."
    )
    worker_stale_seconds: float = Field(
        120.0, gt=0, description="A request whose worker has not beaten for this long is run again."
    )
    worker_max_attempts: int = Field(
        5, ge=1, description="Attempts of a request (retries of a busy target, dead workers) before it fails."
    )
    worker_stop_seconds: float = Field(
        30.0, ge=0, description="On shutdown, how long running requests get to finish."
    )
    realtime_debounce_seconds: float = Field(
        2.0, ge=0, description="A hub change is pushed once its node has been quiet this long."
    )
    realtime_max_delay_seconds: float = Field(
        10.0, ge=0, description="Longest wait of a pushed change while its node keeps changing."
    )

    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
