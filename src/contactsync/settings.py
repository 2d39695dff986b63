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

    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
