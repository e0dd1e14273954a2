"""Settings shared by every environment. Values that differ between machines
come from the environment (see deploy/.env.example)."""
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()


def env_path(name: str, default: Path) -> Path:
    """A filesystem path from the environment, as a pathlib.Path (env.path gives environ.Path, which has no `/`)."""
    return Path(env(name, default=str(default)))

def tile_origins(url_template: str) -> list[str]:
    """The CSP source for a tile URL template ("https://{s}.tile.example/{z}/{x}/{y}.png" -> "https://*.tile.example")."""
    if not url_template:
        return []
    parts = urlsplit(url_template)
    return [f"{parts.scheme}://{parts.netloc.replace('{s}', '*')}"]


environ.Env.read_env(BASE_DIR / ".env", overwrite=False)  # optional local overrides

SECRET_KEY = env("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "django.contrib.postgres",  # trigram lookups for the gazetteer search (reports.gazetteer)
    "rest_framework",
    "rest_framework_gis",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "reports",
    "classifier",
    "console",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "reports.middleware.UploadSizeLimitMiddleware",
    "reports.middleware.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the switcher's cookie, then Accept-Language
    "reports.i18n.LanguageMiddleware",  # ?lang= for one page (hreflang links); the console in English
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out login into the lockout page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "reports.context_processors.site",
            ],
        },
    },
]

# PostGIS. DATABASE_URL like postgis://user:pass@127.0.0.1:5433/civic
DATABASES = {"default": env.db("DATABASE_URL", default="postgis://civic@127.0.0.1:54329/civic")}
DATABASES["default"]["ENGINE"] = "django.contrib.gis.db.backends.postgis"
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# DATABASE_POOLER=pgbouncer: DATABASE_URL points at PgBouncer in transaction mode, which hands each
# transaction whichever server connection is free. So: no connection kept between requests, no
# server-side cursors (a cursor outlives its transaction) and no prepared statements (psycopg 3
# prepares a query after 5 runs; the next transaction's server would not know it).
DATABASE_POOLER = env("DATABASE_POOLER", default="")  # "" = straight to PostgreSQL, or "pgbouncer"
if DATABASE_POOLER == "pgbouncer":
    DATABASES["default"].update(CONN_MAX_AGE=0, DISABLE_SERVER_SIDE_CURSORS=True)
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None
elif DATABASE_POOLER:
    raise ImproperlyConfigured(f"DATABASE_POOLER={DATABASE_POOLER!r}; choose pgbouncer or leave it empty")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# django-axes first: it refuses a locked-out client before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
LOGIN_URL = "/console/login/"
LOGIN_REDIRECT_URL = "/console/"

LANGUAGE_CODE = "en-gb"
# Citizens' pages, their e-mails and the API's messages in English and Welsh (locale/); the
# staff console stays in English. The switcher (set_language) stores the choice in a cookie.
LANGUAGES = [("en-gb", "English"), ("cy", "Cymraeg")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # seconds
LANGUAGE_COOKIE_SAMESITE = "Lax"
TIME_ZONE = env("TIME_ZONE", default="Europe/London")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / ".local" / "static")
STATICFILES_DIRS = [BASE_DIR / "static"]

# Photos. Originals (with GPS, faces) live in private storage that is never
# served directly; public derivatives and thumbnails are metadata-free.
MEDIA_ROOT = env_path("MEDIA_ROOT", BASE_DIR / ".local" / "media")
MEDIA_URL = "/media/"
PRIVATE_MEDIA_ROOT = env_path("PRIVATE_MEDIA_ROOT", BASE_DIR / ".local" / "private")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "public": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    },
    "private": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(PRIVATE_MEDIA_ROOT), "base_url": None},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# PHOTO_STORAGE=s3 keeps them in S3-compatible object storage instead (AWS, MinIO...), so that
# every web node and worker sees the same photos: originals in a private bucket (staff get
# signed URLs valid S3_SIGNED_URL_SECONDS), public copies and thumbnails in a public one
# (reports/s3.py). Empty keys fall back to boto3's own chain (instance role, AWS_* variables).
PHOTO_STORAGE = env("PHOTO_STORAGE", default="local")
# Model directories (classifier/model_files.py). local: MODEL_ROOT is the registry's folder, shared by
# the training box and every process that loads a model. s3: a registered model is also put in the
# private bucket under models/<version>/, and MODEL_ROOT is each machine's cache, filled on demand
# with every file checked against the sha256 the registry stored.
MODEL_STORAGE = env("MODEL_STORAGE", default="local")
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL", default="")  # empty = AWS; set for MinIO and the like
S3_PUBLIC_URL = env("S3_PUBLIC_URL", default="")  # address in front of the public bucket; empty = the bucket's
if "s3" in (PHOTO_STORAGE, MODEL_STORAGE):
    _s3 = {
        "endpoint_url": S3_ENDPOINT_URL or None,
        "region_name": env("S3_REGION", default="us-east-1"),
        "access_key": env("S3_ACCESS_KEY_ID", default="") or None,
        "secret_key": env("S3_SECRET_ACCESS_KEY", default="") or None,
        "signature_version": "s3v4",
        # Path-style for a given endpoint (MinIO, a loopback test server), bucket hostnames on AWS.
        "addressing_style": "path" if S3_ENDPOINT_URL else "virtual",
    }
if PHOTO_STORAGE == "s3":
    STORAGES["private"] = {"BACKEND": "reports.s3.PrivatePhotoStorage", "OPTIONS": {
        **_s3, "bucket_name": env("S3_PRIVATE_BUCKET"),
        "querystring_expire": env.int("S3_SIGNED_URL_SECONDS", default=300)}}  # seconds
    STORAGES["public"] = {"BACKEND": "reports.s3.PublicPhotoStorage", "OPTIONS": {
        **_s3, "bucket_name": env("S3_PUBLIC_BUCKET"), "public_url": S3_PUBLIC_URL or None}}
elif PHOTO_STORAGE != "local":
    raise ImproperlyConfigured(f"PHOTO_STORAGE is {PHOTO_STORAGE!r}; choose local or s3")
if MODEL_STORAGE == "s3":
    STORAGES["models"] = {"BACKEND": "classifier.s3.ModelStorage", "OPTIONS": {
        **_s3, "bucket_name": env("S3_PRIVATE_BUCKET")}}
elif MODEL_STORAGE != "local":
    raise ImproperlyConfigured(f"MODEL_STORAGE is {MODEL_STORAGE!r}; choose local or s3")

# Upload limits.
PHOTO_MAX_BYTES = env.int("PHOTO_MAX_BYTES", default=15 * 1024 * 1024)  # bytes
PHOTO_MAX_PIXELS = env.int("PHOTO_MAX_PIXELS", default=50_000_000)  # width*height
PUBLIC_PHOTO_MAX_SIDE = 1600  # pixels, longest side of the public derivative
THUMBNAIL_MAX_SIDE = 320  # pixels
# Whole request body; a little above the photo limit for the other fields.
DATA_UPLOAD_MAX_MEMORY_SIZE = PHOTO_MAX_BYTES + 1024 * 1024  # bytes
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # bytes; larger uploads spool to a temp file
FILE_UPLOAD_PERMISSIONS = 0o640

# Optional council boundary as WKT/EWKT/GeoJSON polygon (SRID 4326); reports
# outside are rejected. Empty = accept anywhere on Earth.
COUNCIL_BOUNDARY = env("COUNCIL_BOUNDARY", default="")
COUNCIL_NAME = env("COUNCIL_NAME", default="Demo Borough Council")
# Where the accessibility statement (/accessibility/) tells people to ask for another format or report
# a barrier; empty = the statement points to the council's own contact details instead.
ACCESSIBILITY_CONTACT_EMAIL = env("ACCESSIBILITY_CONTACT_EMAIL", default="")
# Response targets skip this nation's bank holidays (holidays.UK subdivision: ENG, WLS, SCT, NIR).
COUNCIL_NATION = env("COUNCIL_NATION", default="ENG")
# Reporter (and "also reported") contact details are erased this many days after a report
# closes (manage.py erase_contact_details, nightly). 0 = never.
REPORTER_CONTACT_RETENTION_DAYS = env.int("REPORTER_CONTACT_RETENTION_DAYS", default=365)
# Map: tile URL template; empty disables tiles (the pin still works).
MAP_TILE_URL = env("MAP_TILE_URL", default="https://tile.openstreetmap.org/{z}/{x}/{y}.png")
MAP_TILE_ATTRIBUTION = env("MAP_TILE_ATTRIBUTION", default="&copy; OpenStreetMap contributors")
MAP_DEFAULT_CENTER = env.list("MAP_DEFAULT_CENTER", cast=float, default=[51.5074, -0.1278])  # lat, lon
# Maps (REST GeoJSON, console map): above this many reports in the box, answer with grid
# clusters (reports/clusters.py) instead of one feature per report. Reports.
MAP_CLUSTER_THRESHOLD = env.int("MAP_CLUSTER_THRESHOLD", default=1000)
# Seconds an anonymous GeoJSON answer is reused for the same query (0 = never); new reports
# appear on the public map within this time.
MAP_CACHE_SECONDS = env.int("MAP_CACHE_SECONDS", default=30)

# Console: duplicate candidates within this distance of a report, metres.
DUPLICATE_RADIUS_M = env.float("DUPLICATE_RADIUS_M", default=50)

# How long after submitting a citizen may confirm or correct the category on the
# thank-you page (the signed token in their session expires), seconds.
CITIZEN_LABEL_MAX_AGE = env.int("CITIZEN_LABEL_MAX_AGE", default=24 * 3600)
REPORTER_LINK_MAX_AGE = env.int("REPORTER_LINK_MAX_AGE", default=400 * 24 * 3600)  # seconds: the reporter's private link in e-mails

# Reverse proxies (nginx, a load balancer) whose X-Forwarded-For is believed, as CIDRs
# ("10.0.0.0/8,192.0.2.1/32"); empty = none, the header is ignored (reports/clientip.py).
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# Submission limits (reports/throttle.py, django-ratelimit syntax "count/period"): accepted
# reports per client IP, and every attempt (bad key, bad photo, refused) per client IP. A client
# with an API key is limited by ApiKey.reports_per_hour instead; console staff are not limited.
REPORT_RATE_LIMIT = env("REPORT_RATE_LIMIT", default="20/h")
REPORT_ATTEMPT_RATE_LIMIT = env("REPORT_ATTEMPT_RATE_LIMIT", default="60/h")
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
# Retry-After of a 503 while the database or the photo storage is unavailable, seconds.
SERVICE_UNAVAILABLE_RETRY_AFTER = env.int("SERVICE_UNAVAILABLE_RETRY_AFTER", default=60)

# Login throttling (django-axes) for the console and the admin: AXES_FAILURE_LIMIT wrong
# passwords for one username from one client IP lock that pair out for AXES_COOLOFF_MINUTES.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)  # failed logins
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "reports.clientip.client_ip"
AXES_LOCKOUT_CALLABLE = "reports.throttle.login_locked_out"

# Content-Security-Policy (django-csp): scripts, styles and frames only from this site; no
# inline script or style, no eval. Map tiles are the one outside source (img-src).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", *tile_origins(MAP_TILE_URL)],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Public photos in object storage load from the bucket's (or S3_PUBLIC_URL's) origin.
if PHOTO_STORAGE == "s3" and not S3_PUBLIC_URL.startswith("/"):
    _photos = S3_PUBLIC_URL or S3_ENDPOINT_URL
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"].append(
        "{0.scheme}://{0.netloc}".format(urlsplit(_photos)) if _photos else "https://*.amazonaws.com")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "civic_cache",
    }
}

# Tasks: immediate in the demo, database-backed queue + db_worker in production.
# The "default" backend has two queues: "default" (mail and every other task; the task worker,
# `run_worker --queue-name default`) and "classify" (classification alone; the classifier worker,
# `run_worker --queue-name classify`, the only process that loads ONNX Runtime), so a photo never
# waits behind e-mail. "training" carries retrains (minutes each) apart from both: in the demo a
# background thread, so "Retrain now" and correction-triggered retrains never run inside
# a web request; in production its own `db_worker --backend training`.
TASK_QUEUES = ["default", "classify"]
TASKS = {
    "default": {"BACKEND": env("TASKS_BACKEND", default="django_tasks.backends.immediate.ImmediateBackend"),
                "QUEUES": TASK_QUEUES},
    "training": {"BACKEND": env("TRAINING_TASKS_BACKEND",
                                default="classifier.task_backends.BackgroundThreadBackend")},
}

# Whether the process that takes a report (or activates a model) classifies at once, itself
# (the demo, a one-box install), instead of queueing it on "classify" for a classifier worker.
# False on the web role in production: gunicorn then never imports ONNX Runtime nor needs the model.
CLASSIFY_INLINE = env.bool("CLASSIFY_INLINE", default=True)
# Classifier (see classifier/). DEVICE: auto | cuda | cpu.
CLASSIFIER = {
    "BACKEND": env("CLASSIFIER_BACKEND", default="classifier.onnx.OnnxClassifier"),
    "DEVICE": env("CLASSIFIER_DEVICE", default="auto"),
    "INTRA_OP_THREADS": env.int("CLASSIFIER_THREADS", default=0),  # 0 = auto: 1 per decode worker on CPU, ORT default on CUDA
    "TOP_K": 3,
}
# Registered model directories (MODEL_STORAGE=local), or this machine's cache of them (s3).
MODEL_ROOT = env_path("MODEL_ROOT", BASE_DIR / ".local" / "models")
DEFAULT_AUTO_TRIAGE_THRESHOLD = 0.85  # probability
# Derived auto-triage thresholds (classifier/thresholds.py): at each promotion, each category's
# threshold is the lowest at which, with AUTO_TRIAGE_CONFIDENCE confidence, at least
# AUTO_TRIAGE_TARGET_PRECISION of the holdout photos auto-triaged as it are right. Both 0-1.
AUTO_TRIAGE_TARGET_PRECISION = env.float("AUTO_TRIAGE_TARGET_PRECISION", default=0.97)
AUTO_TRIAGE_CONFIDENCE = env.float("AUTO_TRIAGE_CONFIDENCE", default=0.95)
# Live quality guard (classifier/quality.py): this share (0-1) of would-be auto-triaged reports
# goes to review as spot checks; a category whose live precision since activation is credibly
# below the target (Wilson upper bound, at least QUALITY_GUARD_MIN_DECISIONS staff decisions)
# stops auto-triaging until the next promotion.
SPOT_CHECK_SHARE = env.float("SPOT_CHECK_SHARE", default=0.05)
QUALITY_GUARD_MIN_DECISIONS = env.int("QUALITY_GUARD_MIN_DECISIONS", default=10)  # staff decisions per category
CLASSIFIER_RELOAD_SECONDS = env.float("CLASSIFIER_RELOAD_SECONDS", default=5.0)  # how often a process checks for a new active model
CLASSIFIER_BATCH_SIZE = env.int("CLASSIFIER_BATCH_SIZE", default=16)  # reports per inference batch
CLASSIFIER_BATCH_WAIT_MS = env.int("CLASSIFIER_BATCH_WAIT_MS", default=0)  # ms a worker waits to fill a batch
CLASSIFIER_RETRIES = 3  # attempts per task on transient failure
# Task workers (`manage.py run_worker`, classifier/worker.py): a heartbeat row per worker in the
# database; a worker silent for WORKER_LEASE_SECONDS is presumed dead and the tasks it was running
# go back to the queue. Every WORKER_CATCHUP_SECONDS the classification worker classifies reports
# that waited pending longer than PENDING_CATCHUP_AFTER_SECONDS (lost tasks, a model outage).
WORKER_HEARTBEAT_SECONDS = env.float("WORKER_HEARTBEAT_SECONDS", default=10.0)  # seconds
WORKER_LEASE_SECONDS = env.float("WORKER_LEASE_SECONDS", default=60.0)  # seconds
WORKER_CATCHUP_SECONDS = env.float("WORKER_CATCHUP_SECONDS", default=60.0)  # seconds
PENDING_CATCHUP_AFTER_SECONDS = env.float("PENDING_CATCHUP_AFTER_SECONDS", default=60.0)  # seconds
WORKER_RECONNECT_MAX_SECONDS = env.float("WORKER_RECONNECT_MAX_SECONDS", default=30.0)  # backoff cap, seconds
# /healthz (config/health.py) says "degraded" when the oldest pending report is older than this,
# or, with a database task queue, when no worker serving a queue with work to do (the classifier
# workers' "classify", the task workers' "default") has been seen for HEALTH_MAX_WORKER_SILENCE_SECONDS.
HEALTH_MAX_PENDING_AGE_SECONDS = env.float("HEALTH_MAX_PENDING_AGE_SECONDS", default=300.0)  # seconds
HEALTH_MAX_WORKER_SILENCE_SECONDS = env.float("HEALTH_MAX_WORKER_SILENCE_SECONDS", default=120.0)  # seconds

# Retraining (manage.py retrain, nightly from deploy/). The training runs in a
# subprocess with TRAINING_PYTHON, so the web environment never imports torch.
TRAINING_PYTHON = env("TRAINING_PYTHON", default="")  # empty = this interpreter
TRAINING_ARGS = env.list("TRAINING_ARGS", default=[])  # extra `python -m training train` flags
RETRAIN_DIR = env_path("RETRAIN_DIR", BASE_DIR / ".local" / "retrain")  # exports, candidates, reports
# Backbone features per photo, reused by every retrain (keyed by photo SHA-256, backbone, weights, view):
# a nightly retrain encodes only the photos it has not seen. Safe to delete; about 26 kB a photo.
TRAINING_FEATURE_CACHE = env_path("TRAINING_FEATURE_CACHE", BASE_DIR / ".local" / "feature-cache")
RETRAIN_MIN_NEW_LABELS = env.int("RETRAIN_MIN_NEW_LABELS", default=20)  # verified labels since the active model
RETRAIN_MAX_MACRO_F1_DROP = env.float("RETRAIN_MAX_MACRO_F1_DROP", default=0.01)  # vs active, on the holdout
RETRAIN_MAX_RECALL_DROP = env.float("RETRAIN_MAX_RECALL_DROP", default=0.05)  # per category, vs active
RETRAIN_MIN_MACRO_F1 = env.float("RETRAIN_MIN_MACRO_F1", default=0.5)  # first model ever: sanity floor
# A drop this many holdout photos could make never rejects a candidate (classifier.retrain.gate):
# on the council's first holdout photos (a handful) one photo flipping is tens of points. 0 = strict.
RETRAIN_GATE_GRACE_PHOTOS = env.int("RETRAIN_GATE_GRACE_PHOTOS", default=1)
# Below these no retrain trains or promotes a model, "Retrain now" included: a gate judged on a
# handful of photos proves nothing (classifier/retrain.py; the model panel says what is missing).
RETRAIN_MIN_LABELS_PER_CLASS = env.int("RETRAIN_MIN_LABELS_PER_CLASS", default=10)  # training photos, each class
RETRAIN_MIN_HOLDOUT = env.int("RETRAIN_MIN_HOLDOUT", default=20)  # holdout photos, all classes together
# Correction-triggered retraining (classifier/triggers.py): staff corrections of the active
# model's predictions since its activation queue one retrain per trigger and model. 0 = off.
RETRAIN_AFTER_CORRECTIONS = env.int("RETRAIN_AFTER_CORRECTIONS", default=10)  # corrections, all categories
RETRAIN_CORRECTION_SHARE = env.float("RETRAIN_CORRECTION_SHARE", default=0.15)  # share (0-1) of one label's reports
RETRAIN_CORRECTION_MIN_VERIFIED = env.int("RETRAIN_CORRECTION_MIN_VERIFIED", default=10)  # reports of that label first
HOLDOUT_SHARE = 0.2  # share of each label's verified reports frozen into the holdout
HOLDOUT_MIN_PER_LABEL = 5  # labels with fewer verified reports get no holdout yet
# A label the active model does not know yet (a new class) is exported for training only once it
# has this many verified photos (reports + training examples) outside the holdout; the holdout's
# share comes on top. Below it the label trains on nothing and holds nothing back.
MIN_PHOTOS_NEW_CLASS = env.int("MIN_PHOTOS_NEW_CLASS", default=10)  # photos

# Mail (notifications/): EMAIL_URL like smtp+tls://user:pass@smtp.example.org:587 (production);
# the demo writes .eml files to .local/mail/ instead (config/settings/local.py).
vars().update(env.email_url("EMAIL_URL", default="smtp://127.0.0.1:25"))
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)  # seconds a send may wait for the mail server
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Civic reports <reports@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")  # links in e-mails start with this
MAIL_TASK_BACKEND = env("MAIL_TASK_BACKEND", default="default")  # TASKS alias that sends mail
MAIL_MAX_ATTEMPTS = env.int("MAIL_MAX_ATTEMPTS", default=8)  # sends of one message before it is marked failed
MAIL_RETRY_BASE_SECONDS = env.int("MAIL_RETRY_BASE_SECONDS", default=60)  # seconds; doubles after each failure
MAIL_RETRY_MAX_SECONDS = env.int("MAIL_RETRY_MAX_SECONDS", default=3600)  # seconds, longest wait between sends
UNSUBSCRIBE_LINK_MAX_AGE = env.int("UNSUBSCRIBE_LINK_MAX_AGE", default=2 * 365 * 24 * 3600)  # seconds

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "reports.api.exception_handler",
    # JSON only: DRF's browsable API pages need inline styles the CSP refuses; /api/docs/ is the human view.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Civic reports API",
    "DESCRIPTION": "Report public-works issues with a geotagged photo.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# GDAL 3.6 (Debian 12) cannot sandbox file access; we never hand user input to GDAL
# (coordinates are parsed as numbers, the boundary comes from our own settings).
SILENCED_SYSTEM_CHECKS = ["gis.W001"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
}
