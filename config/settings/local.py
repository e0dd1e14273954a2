"""Development / `make demo`: the throwaway cluster under .local/pg."""
from .base import *  # noqa: F401,F403
from .base import BASE_DIR, TASKS, env

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-key-change-me")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["*"])

# Mail: each message a .eml file in .local/mail/ (the log says which) unless EMAIL_URL is set;
# sent on a background thread ("mail" queue), so no request waits for it.
if not env("EMAIL_URL", default=""):
    EMAIL_BACKEND = "notifications.backends.EmlFileBackend"
    EMAIL_FILE_PATH = str(BASE_DIR / ".local" / "mail")
TASKS = {**TASKS, "mail": {"BACKEND": "classifier.task_backends.BackgroundThreadBackend"}}
MAIL_TASK_BACKEND = env("MAIL_TASK_BACKEND", default="mail")
