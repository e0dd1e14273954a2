"""Production: no insecure defaults; fails at start-up when misconfigured."""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import TASK_QUEUES, env

SECRET_KEY = env("SECRET_KEY", default="")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set in production")
DEBUG = False
# The web role queues classification for the classifier workers (deploy/env/web.env.example);
# a one-box install without a classifier worker sets CLASSIFY_INLINE=true.
CLASSIFY_INLINE = env.bool("CLASSIFY_INLINE", default=False)
CLASSIFIER_BATCH_WAIT_MS = env.int("CLASSIFIER_BATCH_WAIT_MS", default=50)  # ms; lets a GPU worker fill batches
TASKS = {
    "default": {"BACKEND": env("TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"), "QUEUES": TASK_QUEUES},
    "training": {"BACKEND": env("TRAINING_TASKS_BACKEND", default="django_tasks_db.DatabaseBackend")},
}
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
LANGUAGE_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)  # seconds; 0 disables HSTS
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
