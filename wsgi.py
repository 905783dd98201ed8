"""The WSGI entry point: ``gunicorn wsgi:app``, ``flask --app wsgi registry ...``."""

from registry import create_app

app = create_app()
