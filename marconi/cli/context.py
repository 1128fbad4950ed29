"""What every `marconi` command shares: the settings, a lazily started engine, and JSON output."""

from __future__ import annotations

import json

import click

from marconi.config import Config


class Ctx:
    """The config and a lazily built engine, shared by the subcommands (``pass_ctx`` hands it over)."""

    def __init__(self, config: Config):
        self.config = config
        self._engine = None

    @property
    def engine(self):
        """The SQLAlchemy engine (starts the embedded server when needed)."""
        if self._engine is None:
            from marconi.db import make_engine

            self._engine = make_engine(self.config)
        return self._engine

    def checked_engine(self):
        """The engine, after checking the schema is current (clear message otherwise)."""
        from marconi.db import migrate

        migrate.check(self.engine)  # SchemaOutdated is a MarconiError: the main group prints its message
        return self.engine


pass_ctx = click.make_pass_decorator(Ctx)


def echo_json(obj) -> None:
    """Print ``obj`` as indented JSON (dates and other objects as strings)."""
    click.echo(json.dumps(obj, indent=2, default=str))
