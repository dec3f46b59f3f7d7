"""WSGI entry point: ``gunicorn --preload -w 4 mysite.wsgi`` (run from example_project/)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
