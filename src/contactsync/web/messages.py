"""Console words that come from data (statuses, roles, kinds) and the notices shown after a
form is done, marked here so that the catalogue extraction finds them."""

from __future__ import annotations

from contactsync.web.i18n import Gettext


def notice(_: Gettext, key: str | None) -> str | None:
    """The message of a ``?notice=`` key (never text from the URL itself)."""
    if not key:
        return None
    notices = {
        "source_created": _("Source created."),
        "source_saved": _("Source saved."),
        "source_deleted": _("Source deleted."),
        "signed_in": _("Signed in at the provider: the source holds new tokens."),
        "revoked": _("Access revoked: the source is disabled and holds no credentials."),
        "token_revoked": _("Token revoked."),
        "job_paused": _("Recurrence paused."),
        "job_resumed": _("Recurrence activated."),
        "job_started": _("Run started."),
        "job_created": _("Exchange job created: give it a schedule, or run it now."),
        "job_deleted": _("Exchange job deleted."),
        "schedule_saved": _("Schedule saved."),
        "webhook_saved": _("Webhook saved."),
        "webhook_deleted": _("Webhook deleted."),
        "redelivered": _("Delivery queued again."),
    }
    return notices.get(key)


def data_words(_: Gettext) -> list[str]:
    """Words templates translate with ``_(value)``; listed for the extractor only."""
    return [
        _("subscribed"),
        _("unsubscribed"),
        _("pending"),
        _("cleaned"),
        _("standard"),
        _("aggregate"),
        _("admin"),
        _("editor"),
        _("viewer"),
        _("CREATE"),
        _("UPDATE"),
        _("DELETE"),
        _("api"),
        _("import"),
        _("sync"),
        _("webhook"),
        _("console"),
        _("cli"),
        _("demo"),
        _("running"),
        _("succeeded"),
        _("failed"),
        _("stopped"),
        _("interrupted"),
        _("created"),
        _("updated"),
        _("skipped"),
        _("deleted"),
        _("hub"),
        _("provider"),
        _("manual"),
        _("schedule"),
        _("resume"),
        _("delivered"),
        _("importer"),
        _("updater"),
        _("displacer"),
        _("exporter"),
        _("mon"),
        _("tue"),
        _("wed"),
        _("thu"),
        _("fri"),
        _("sat"),
        _("sun"),
        _("Mobile phone"),
        _("Phone"),
        _("Date of birth"),
        _("Gender"),
        _("Title"),
        _("City"),
        _("Country"),
    ]


def option_label(_: Gettext, name: str) -> str:
    """A provider option's label on the source form (its name when no label is known)."""
    labels = {
        "client_id": _("Client ID (API key)"),
        "client_secret": _("Client secret"),
        "redirect_uri": _("Redirect URI"),
        "base_url": _("API URL"),
        "auth_url": _("Authorization URL"),
        "token_url": _("Token URL"),
        "revoke_url": _("Revoke URL"),
        "page_size": _("Page size"),
        "bulk_threshold": _("Bulk threshold (records)"),
        "activity_timeout_s": _("Bulk activity timeout (seconds)"),
        "user_db": _("User DB"),
        "api_key": _("API key"),
        "url": _("Database URL"),
        "table": _("Table"),
        "db_schema": _("Schema"),
        "key_column": _("Key column"),
        "email_column": _("Email column"),
        "updated_at_column": _("Updated-at column"),
        "soft_delete_column": _("Soft-delete column"),
        "lists": _("Lists (JSON: list id → column)"),
    }
    return labels.get(name, name.replace("_", " "))


def word(_: Gettext, value: str) -> str:
    """A setting's value as words (directions, policies); other values translated as they are."""
    words = {
        "to_provider": _("to the provider"),
        "to_hub": _("to the hub"),
        "both": _("both ways"),
        "hub_wins": _("the hub wins"),
        "provider_wins": _("the provider wins"),
        "newest_wins": _("the newest change wins"),
        "ignore": _("keep it on the other side"),
        "unsubscribe": _("unsubscribe it on the other side"),
        "archive": _("archive it on the other side"),
        "delete": _("delete it on the other side too"),
    }
    return words.get(value) or _(value)
