"""Settings shared by every environment. Values that differ come from config.env."""

from __future__ import annotations

from datetime import timedelta

import django_stubs_ext
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE

from config.env import BASE_DIR, VAR_DIR, celery_broker, database_config, email_config, env
from config.queues import DEFAULT_QUEUE, task_routes

# Lets generic classes such as ModelAdmin[Model] be subscripted at run time, as the type stubs expect.
django_stubs_ext.monkeypatch()

DEBUG = False
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "config.apps.TrialloopAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "csp",
    "audiences",
    "trials",
    "segments",
    "offers",
    "integrations",
    # Last, so its post_migrate hook (roles, schedules) runs once every other app's permissions exist.
    "config.apps.ProjectConfig",
]

MIDDLEWARE = [
    # The security headers first, so every response gets them, static files (whitenoise answers early) too.
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.security_headers.PermissionsPolicyMiddleware",
    # Before anything reads the body or the database: oversize bodies, NUL and broken UTF-8, database outages.
    "config.request_guard.RequestGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.audit.AuditRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its answer (config.sign_in.lockout_response).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.navigation",
                "trials.context_processors.workspace_currency",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {"default": database_config()}
# PostgreSQL only, web process only (config/wsgi.py, config/asgi.py): a statement running longer is cancelled and
# the request answered 503 with Retry-After, instead of holding a worker and a connection; 0 turns it off.
DATABASE_STATEMENT_TIMEOUT_MS = env.int("DATABASE_STATEMENT_TIMEOUT_MS", default=5000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Sign-in lockout (django-axes, config/sign_in.py): after SIGN_IN_MAX_FAILURES failed attempts for one username
# from one address, that username may not sign in from that address until SIGN_IN_LOCKOUT_MINUTES have passed
# since the last failure (or an admin unlocks it). Keyed on the pair, so failures from elsewhere never lock the
# owner out; the password is not checked while locked out.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("SIGN_IN_MAX_FAILURES", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("SIGN_IN_LOCKOUT_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.sign_in.lockout_response"
# Successful sign-ins are not kept (the attempts table holds failures only, for the cool-off window).
AXES_DISABLE_ACCESS_LOG = True
# Never stored with a failed attempt nor logged: the password (always), what was typed as the username, the
# address and the form's CSRF token.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]

# Security headers on every response (docs/operations.md). Content-Security-Policy (django-csp): scripts only
# from this server or inline with the response's nonce (`<script nonce="{{ CSP_NONCE }}">`), never inline
# handlers (`onclick=`; static/js/trialloop.js handles `data-confirm`), nothing from another host, no plugins,
# no <base>, forms post only here, and no framing (a page meant to be embedded, such as the hosted cancellation
# page, replaces `frame-ancestors` on its own response with csp.decorators.csp_replace). Styles allow
# inline `style` attributes and <style> blocks: email previews render the template's own inline styles inside
# this policy (a srcdoc frame inherits it), and a style cannot run script. Images may come from any HTTPS host:
# logos of cancellation flows and images in email templates live on the customer's own servers.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:", "https:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Powerful browser features no page of Trialloop uses (config.security_headers).
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Uploaded import files wait here until their import has run.
IMPORT_DIR = VAR_DIR / "imports"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["config.permissions.RoleModelPermissions"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "config.pagination.NewestFirstCursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.json_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "config.api.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trialloop API",
    "DESCRIPTION": "Customers, accounts, subscriptions and events of a Trialloop installation.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its browsable docs are for signed-in staff and API token holders, not the open internet.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `kind`; name each choice set so the schema's enums do not collide.
    "ENUM_NAME_OVERRIDES": {
        "SourceKindEnum": "audiences.models.Source.Kind",
        "DestinationKindEnum": "integrations.destinations.models.Destination.Kind",
        "ComputedTraitKindEnum": "audiences.models.ComputedTrait.Kind",
        "MembershipChangeKindEnum": "segments.models.SegmentMembershipChange.Kind",
        "OutboundKindEnum": "config.facts.FactKind",
    },
}

_broker_url, _broker_options = celery_broker()
CELERY_BROKER_URL = _broker_url
CELERY_BROKER_TRANSPORT_OPTIONS = _broker_options
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = DEFAULT_QUEUE
# "single": every task on the default queue (one worker pool); "split": by kind onto ingest, evaluate, email and
# webhooks as well, for a worker pool per queue (config/queues.py, docs/deployment.md).
TRIALLOOP_TASK_QUEUES = env.str("TRIALLOOP_TASK_QUEUES", default="single")
CELERY_TASK_ROUTES = task_routes(TRIALLOOP_TASK_QUEUES)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # No email address or secret reaches a log line, whatever a message or exception contains (docs/security.md).
    "filters": {"redact": {"()": "config.log_redaction.RedactingFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Stripe. Webhook signing secrets, comma-separated so a secret can be rotated with both valid for a while.
STRIPE_WEBHOOK_SECRETS: list[str] = env.list("STRIPE_WEBHOOK_SECRETS", default=[])
# Optional: with an API key, backfill (stripe_sync) and refetching objects work; without, webhooks alone do.
STRIPE_API_KEY: str = env.str("STRIPE_API_KEY", default="")
# Only for tests and proxies: where the stripe library sends API calls.
STRIPE_API_BASE: str = env.str("STRIPE_API_BASE", default="")

# Fact destinations may target loopback, private, link-local or reserved addresses only when this is set
# (a receiver on the same host or network); otherwise such URLs are refused when saved and when sent.
DESTINATIONS_ALLOW_PRIVATE_URLS: bool = env.bool("DESTINATIONS_ALLOW_PRIVATE_URLS", default=False)

# Lifecycle email (trials.messaging.delivery): SMTP from EMAIL_URL or EMAIL_HOST/EMAIL_PORT, else the console backend.
_email = email_config()
EMAIL_BACKEND: str = _email.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST: str = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT: int = int(_email.get("EMAIL_PORT", 25))
EMAIL_HOST_USER: str = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD: str = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS: bool = bool(_email.get("EMAIL_USE_TLS", False))
EMAIL_USE_SSL: bool = bool(_email.get("EMAIL_USE_SSL", False))
EMAIL_TIMEOUT: int = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL: str = env.str("DEFAULT_FROM_EMAIL", default="Trialloop <noreply@localhost>")
# The address customers reach this server at, for links in emails (unsubscribe).
TRIALLOOP_PUBLIC_URL: str = env.str("TRIALLOOP_PUBLIC_URL", default="http://127.0.0.1:8000")

# How long the session token a cancellation session start hands out works (docs/offers.md).
CANCELLATION_SESSION_TOKEN_MINUTES: int = env.int("CANCELLATION_SESSION_TOKEN_MINUTES", default=30)
