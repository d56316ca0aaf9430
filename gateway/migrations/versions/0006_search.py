"""search: a full-text index of the comments, for ``gateway requests list --search``: SQLite's FTS5
(an external-content table kept by triggers, accents folded), PostgreSQL's GIN index of to_tsvector

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE INDEX ix_comments_search ON comments USING gin (to_tsvector('simple', text))")
        return
    op.execute("CREATE VIRTUAL TABLE comments_search USING fts5(text, content='comments', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute("INSERT INTO comments_search(rowid, text) SELECT id, text FROM comments")
    op.execute("CREATE TRIGGER comments_search_insert AFTER INSERT ON comments BEGIN "
               "INSERT INTO comments_search(rowid, text) VALUES (new.id, new.text); END")
    op.execute("CREATE TRIGGER comments_search_delete AFTER DELETE ON comments BEGIN "
               "INSERT INTO comments_search(comments_search, rowid, text) VALUES ('delete', old.id, old.text); END")
    op.execute("CREATE TRIGGER comments_search_update AFTER UPDATE OF text ON comments BEGIN "
               "INSERT INTO comments_search(comments_search, rowid, text) VALUES ('delete', old.id, old.text); "
               "INSERT INTO comments_search(rowid, text) VALUES (new.id, new.text); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_comments_search")
        return
    for trigger in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER comments_search_{trigger}")
    op.execute("DROP TABLE comments_search")
