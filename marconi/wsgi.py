"""The WSGI application for gunicorn: ``gunicorn marconi.wsgi:app`` (settings from the environment)."""

from marconi import create_app

app = create_app()
