"""The WSGI application for gunicorn: ``gunicorn marconi.wsgi:app`` (settings from the environment)."""

from marconi import create_app
from marconi.cooperative import cooperative_database_driver

cooperative_database_driver()  # under gevent workers, before the app opens its first connection
app = create_app()
