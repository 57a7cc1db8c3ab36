"""Tests: the same embedded defaults (or DATABASE_URL / CELERY_BROKER_URL when CI sets them), eager Celery.

The SQLite test database is a file, not memory, so a real Celery worker process and the live server used by
browser tests can see what a test wrote.
"""

from __future__ import annotations

from config.env import VAR_DIR, env, local_secret
from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES

SECRET_KEY = local_secret("SECRET_KEY")
DEBUG = False
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# django-axes needs the request to authenticate, which the test client's login() does not pass; the sign-in
# lockout tests turn it on (config/tests/test_sign_in.py).
AXES_ENABLED = False
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-trialloop.sqlite3")}
else:
    # No persistent connections: the live server's thread must not keep the test database open at teardown.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
TEST_REQUIRE_BROWSER = env.bool("TEST_REQUIRE_BROWSER", default=False)
