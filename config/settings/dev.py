"""Development: embedded defaults, a generated local secret key, debug pages on."""

from __future__ import annotations

from config.env import env, local_secret
from config.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = local_secret("SECRET_KEY")
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
