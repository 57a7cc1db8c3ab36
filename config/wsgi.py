"""WSGI entry point (gunicorn). Web requests run with a statement timeout (config/statement_timeout.py)."""

import os

from django.core.wsgi import get_wsgi_application

from config.statement_timeout import statement_timeout_for_this_process

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
application = get_wsgi_application()
statement_timeout_for_this_process()
