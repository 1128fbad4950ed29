from marconi.wsgi import app  # noqa: F401
