"""WSGI entry point: ``gunicorn wsgi:app``."""

from marconi import create_app

app = create_app()
