"""Alembic environment: run with a connection handed over by nas.store (no alembic.ini)."""

from alembic import context

from nas.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - only through nas.store
    raise RuntimeError("nas.store runs migrations with an open connection")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    version_table="nas_alembic_version",
)
with context.begin_transaction():
    context.run_migrations()
