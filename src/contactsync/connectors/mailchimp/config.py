"""The Mailchimp source's settings and the connector's capabilities."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr

from contactsync.connectors.base import Capabilities, ConnectorConfig
from contactsync.errors import ConfigError

PROVIDER = "mailchimp"
PAGE_SIZE = 1000  # Mailchimp's maximum `count`


class DeleteMode(StrEnum):
    ARCHIVE = "archive"  # DELETE: the member is archived (kept, hidden, can be re-added)
    PERMANENT = "permanent"  # actions/delete-permanent: gone, and can never be re-added by API


class Config(ConnectorConfig):
    """A Mailchimp source: an API key (``<key>-<dc>``) and one audience."""

    api_key: SecretStr
    list_id: str = Field(min_length=1)  # the audience id
    base_url: str | None = None  # default https://<dc>.api.mailchimp.com/3.0; a sandbox for trials
    delete_mode: DeleteMode = DeleteMode.ARCHIVE
    page_size: int = Field(PAGE_SIZE, ge=1, le=PAGE_SIZE)
    bulk_threshold: int = Field(500, ge=1)  # writes of this many items or more use /batches
    concurrency: int = Field(4, ge=1, le=10)  # parallel requests (Mailchimp allows 10 per key)
    batch_timeout_s: float = Field(3600.0, gt=0)

    def api_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        key = self.api_key.get_secret_value()
        dc = key.rpartition("-")[2] if "-" in key else ""
        if not dc.isalnum():
            raise ConfigError(
                "the Mailchimp API key has no data-center suffix (it should end like -us19)", code="E740"
            )
        return f"https://{dc}.api.mailchimp.com/3.0"


CAPABILITIES = Capabilities(
    change_feed=True,
    delete_feed=True,  # archived members; permanent deletions are not visible
    webhooks=True,
    bulk=True,
    max_page_size=PAGE_SIZE,
    rate_limit_per_s=None,  # Mailchimp limits simultaneous connections, not requests per second
    concurrency=10,
)
