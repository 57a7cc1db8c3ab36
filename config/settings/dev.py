"""The embedded profile `make run` serves on one machine: production behaviour over plain HTTP.

DEBUG is off unless a developer asks for it (`DEBUG=1 make run`): visitors get the app's own error pages, never
Django's debug pages with settings and source. The secret key is generated once into the data folder (var/),
never committed. HTTPS-only cookies, HSTS and the SSL redirect stay in prod.py: they would break
http://127.0.0.1. Static files are found through Django's finders and served by whitenoise with DEBUG off
too, so a checkout runs without a collectstatic step; production collects and hashes them (prod.py).
"""

from __future__ import annotations

from config.env import env, local_secret
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = local_secret("SECRET_KEY")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
