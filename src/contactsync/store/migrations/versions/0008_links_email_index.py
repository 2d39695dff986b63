"""links: an index on the email address each link's base holds

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# A provider event that names a record by its address (Mailchimp's webhooks) finds the link of
# a record the provider no longer has by the address the link's base holds: an expression
# index, written per dialect (store/sync.py queries the very same expression, or the database
# would not use it).
LINK_EMAIL_INDEX = {
    "sqlite": "CREATE INDEX ix_links_source_id_email "
    "ON links (source_id, lower(json_extract(base, '$.f.\"base.contacts.email\"')))",
    "postgresql": "CREATE INDEX ix_links_source_id_email "
    "ON links (source_id, lower(base::jsonb #>> '{f,base.contacts.email}'))",
}


def upgrade() -> None:
    op.execute(LINK_EMAIL_INDEX[op.get_bind().dialect.name])


def downgrade() -> None:
    op.execute("DROP INDEX ix_links_source_id_email")
