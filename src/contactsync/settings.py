"""Settings, read from the environment (prefix ``CONTACTSYNC_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./var/contactsync.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTACTSYNC_", env_file=".env", extra="ignore")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the hub's database: SQLite (the default, a file under `./var` "
        "relative to the working directory) or PostgreSQL (`postgresql://user:password@host:5432/db`).",
    )
    host: str = Field(
        "127.0.0.1", description="Address `contactsync serve` listens on (`--host` overrides it)."
    )
    port: int = Field(8000, description="Port `contactsync serve` listens on (`--port` overrides it).")
    public_url: str = Field(
        "",
        description="URL people and providers reach the service at (behind a proxy: the proxy's URL), "
        "used in the links the service hands out: double opt-in confirmation links, inbound webhook URLs, "
        "the OAuth redirect URI and the URLs `contactsync demo` prints. Empty: http://HOST:PORT for "
        "confirmation links and the CLI, the request's own URL in the API and the console.",
    )
    sqlite_cache_mb: int = Field(
        256, description="SQLite page cache per connection, in MB (ignored on PostgreSQL)."
    )
    default_page_size: int = Field(
        10, description="Page size of `GET /customers` and `GET /events` when `size` is not given."
    )
    max_page_size: int = Field(
        1000,
        description="Largest `size` of `GET /customers`, `GET /events` and `contactsync customers find "
        "--size`; a larger one is refused (E200).",
    )
    max_updates_page: int = Field(
        4000, description="Largest `size` of `GET /updates`; a larger one is refused (E200)."
    )
    secret_keys: str = Field(
        "",
        description="Fernet keys that encrypt source credentials, comma-separated: the first encrypts, "
        "all decrypt (rotation: put the new key first and keep the old ones). "
        "When empty, a key is created in `secret_key_file`. Masked in every output.",
    )
    secret_key_file: str = Field(
        "./var/secret.key",
        description="Where the generated key lives (mode 0600) when `secret_keys` is empty; back it up "
        "with the database, or the stored credentials cannot be decrypted.",
    )

    smtp_host: str = Field(
        "",
        description="SMTP server that sends double opt-in confirmation emails and exchange run reports. "
        "Empty: no email is sent, and a double opt-in request is refused (E703).",
    )
    smtp_port: int = Field(25, description="SMTP server port (587 with STARTTLS, 465 with implicit TLS).")
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        "none", description="`none`, `starttls` (upgrade after connecting) or `tls` (implicit TLS, port 465)."
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password. Masked in every output.")
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

    webhook_timeout_s: float = Field(
        10.0, description="Seconds a webhook receiver has to answer; a slower answer is a failed attempt."
    )
    webhook_backoff_s: float = Field(
        30.0, description="Delay before the first webhook retry; it doubles per attempt (with jitter)."
    )
    webhook_backoff_max_s: float = Field(3600.0, description="Longest delay between two webhook retries.")
    webhook_retry_hours: float = Field(
        24.0, description="How long a webhook delivery is retried before it is marked failed."
    )
    webhook_concurrency: int = Field(4, ge=1, description="Webhook deliveries sent in parallel.")
    webhook_poll_s: float = Field(
        1.0,
        description="When idle, seconds between two looks for webhook deliveries to send and inbound "
        "provider events to process.",
    )
    inbound_max_age_s: float = Field(
        5400.0,
        description="Inbound provider events with an older (or future) timestamp are refused; the default "
        "outlasts Mailchimp's 75 minutes of retries. Replays are refused by event id at any age.",
    )
    history_days: int = Field(
        90,
        ge=0,
        description="Days the service keeps its own logs: finished sync runs and their records, finished "
        "exchange runs and their failed-operations rows, sent webhook deliveries, handled inbound events "
        "(the newest run of each source and job, and resumable runs, stay). Pruned hourly by `serve` and "
        "`worker`, or by `contactsync prune`. 0 keeps everything. Customers, events, the change journal "
        "and the consent ledger are never pruned.",
    )
    optin_expiry_hours: float = Field(
        48.0, description="Hours a double opt-in confirmation link stays valid."
    )

    scheduler_tick_seconds: float = Field(
        5.0, gt=0, description="Seconds between two looks of the scheduler at schedules and sources."
    )
    worker_threads: int = Field(2, ge=1, description="Runs a worker process executes at the same time.")
    worker_poll_seconds: float = Field(
        1.0, gt=0, description="Seconds an idle worker waits before looking at the run queue again."
    )
    worker_heartbeat_seconds: float = Field(
        10.0, gt=0, description="Seconds between two heartbeats of a worker on the request it runs."
    )
    worker_stale_seconds: float = Field(
        120.0,
        gt=0,
        description="A request whose worker (on another host) has sent no heartbeat for this long is "
        "queued again; on the same host a dead worker process is noticed at once.",
    )
    worker_max_attempts: int = Field(
        5, ge=1, description="Attempts of a request (retries of a busy target, dead workers) before it fails."
    )
    worker_stop_seconds: float = Field(
        30.0, ge=0, description="On shutdown, how long running requests get to finish."
    )
    realtime_debounce_seconds: float = Field(
        2.0,
        ge=0,
        description="A hub change is pushed to the node's sources once the node has had no new change for "
        "this many seconds.",
    )
    realtime_max_delay_seconds: float = Field(
        10.0, ge=0, description="Longest wait, in seconds, of a pushed change while its node keeps changing."
    )

    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
