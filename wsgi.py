"""gunicorn entry point: `gunicorn -c gunicorn.conf.py wsgi:app` (each worker imports this after fork)."""
from app import create_app

app = create_app()
