"""gunicorn settings for the web process (`gunicorn -c deploy/gunicorn.conf.py config.wsgi`).

Models load lazily in each worker after the fork (see classifier/registry.py),
so preload_app is safe and saves memory; on the web role (CLASSIFY_INLINE=false)
they never load at all, nor is ONNX Runtime imported (tests/test_roles.py).
"""
import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
threads = 2
timeout = 60  # seconds; uploads of 15 MB over slow mobile links
max_requests = 2000  # recycle workers to bound memory growth
max_requests_jitter = 200
preload_app = True
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
