"""WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`. Each worker imports this after fork and starts loading its models."""
import logging

from guidepost import create_app

app = create_app()
guidepost = app.extensions["guidepost"]
if not logging.getLogger().handlers:  # gunicorn.conf.py configures logging; another WSGI server gets the same format
    logging.basicConfig(level=guidepost.settings.log_level,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
guidepost.start()  # GUIDEPOST_LOAD: background (default), eager or lazy
