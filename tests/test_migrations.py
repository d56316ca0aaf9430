"""The migrations build exactly the schema the models describe, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine

import gateway.orders.models  # noqa: F401  (the order tables join the metadata)
from gateway.db import SEARCH_INDEX, migrate
from gateway.models import Base


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    sqlite = f"sqlite:///{tmp_path / 'schema.db'}"
    url = sqlite if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    made = create_engine(url)
    yield made
    made.dispose()


def test_the_migrated_schema_is_the_models_schema(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, _kind, _parent: not (name or "").startswith(SEARCH_INDEX)})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []
