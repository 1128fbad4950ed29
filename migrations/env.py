"""Alembic environment: uses the engine handed over by marconi.db.migrate (or DATABASE_URL via marconi)."""

from alembic import context

from marconi.config import from_env
from marconi.db import make_engine

config = context.config
engine = config.attributes.get("engine") or make_engine(from_env())

with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
