"""Sending: a mail server outage never loses a report or a message; retries back off; the demo's
mailbox is a folder of .eml files."""
from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from notifications.models import OutgoingMessage
from notifications.services import retry_delay
from reports.models import Report

from .test_messages import REPORTER, submit, verify

pytestmark = pytest.mark.django_db


def make_due() -> None:
    """As if the retry's wait had passed."""
    OutgoingMessage.objects.filter(status="queued").update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_send_that_fails_is_retried_once_the_server_is_back(mailbox, committed, unique_jpeg):
    mailbox.stop()
    report = submit(committed, unique_jpeg)
    assert Report.objects.filter(pk=report.pk).exists()  # the report is never lost
    message = OutgoingMessage.objects.get(report=report)
    assert (message.status, message.attempts) == ("queued", 1)
    assert "Connection refused" in message.last_error or "Errno" in message.last_error
    assert message.next_attempt_at > timezone.now()
    call_command("send_pending_mail")  # not due yet: left alone
    assert OutgoingMessage.objects.get(pk=message.pk).attempts == 1
    mailbox.start()
    make_due()
    call_command("send_pending_mail")
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, "")
    assert mailbox.subjects(REPORTER) == [f"We have your report {report.service_request_id}"]


def test_the_next_successful_send_also_sends_what_waited(mailbox, committed, unique_jpeg, triager):
    mailbox.stop()
    report = submit(committed, unique_jpeg)
    mailbox.start()
    make_due()
    verify(committed, report, triager)
    assert len(mailbox.to(REPORTER)) == 2
    assert set(OutgoingMessage.objects.values_list("status", flat=True)) == {"sent"}


def test_the_citizen_form_answers_while_the_mail_server_is_down(mailbox, unique_jpeg, transactional_db):
    mailbox.stop()
    response = Client().post("/report/", {"photo": _upload(unique_jpeg()), "latitude": "51.5", "longitude": "-0.12",
                                          "email": REPORTER})
    assert response.status_code in (302, 303), response.content[:500]
    report = Report.objects.get(reporter_email=REPORTER)
    assert OutgoingMessage.objects.get(report=report).status == "queued"


def _upload(data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("pothole.jpg", data, content_type="image/jpeg")


def test_retries_back_off_and_give_up(mailbox, committed, unique_jpeg, settings):
    settings.MAIL_RETRY_BASE_SECONDS, settings.MAIL_RETRY_MAX_SECONDS, settings.MAIL_MAX_ATTEMPTS = 60, 600, 3
    assert [retry_delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [60, 120, 240, 480, 600]
    mailbox.stop()
    submit(committed, unique_jpeg)
    for _ in range(2):
        make_due()
        call_command("send_pending_mail")
    message = OutgoingMessage.objects.get()
    assert (message.status, message.attempts) == ("failed", 3)
    make_due()
    mailbox.start()
    call_command("send_pending_mail")
    assert mailbox.messages == []  # failed for good: an operator looks (admin), no endless retries


def test_the_demo_writes_eml_files(settings, tmp_path, committed, unique_jpeg):
    settings.EMAIL_BACKEND = "notifications.backends.EmlFileBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path / "mail")
    report = submit(committed, unique_jpeg)
    [path] = (tmp_path / "mail").glob("*.eml")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert message["To"] == REPORTER and report.service_request_id in message["Subject"]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_email_url_configures_smtp_with_tls():
    import environ

    config = environ.Env.email_url_config("smtp+tls://user:secret@smtp.example.org:587")
    assert (config["EMAIL_BACKEND"], config["EMAIL_HOST"], config["EMAIL_PORT"], config["EMAIL_USE_TLS"],
            config["EMAIL_HOST_USER"]) == ("django.core.mail.backends.smtp.EmailBackend", "smtp.example.org", 587,
                                           True, "user")


def test_with_the_database_queue_a_failed_send_is_queued_again_for_its_retry_time(
        mailbox, committed, unique_jpeg, settings):
    from django_tasks_db.models import DBTaskResult

    from notifications.tasks import send_message

    settings.TASKS = {**settings.TASKS, "mail": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    settings.MAIL_TASK_BACKEND = "mail"
    mailbox.stop()
    submit(committed, unique_jpeg)
    message = OutgoingMessage.objects.get()
    assert message.attempts == 0  # queued for a worker, not sent in the request
    [queued] = DBTaskResult.objects.filter(task_path="notifications.tasks.send_message")
    assert send_message.call(message.pk) == "queued"  # what the worker runs
    message.refresh_from_db()
    retry = DBTaskResult.objects.exclude(pk=queued.pk).get(task_path="notifications.tasks.send_message")
    assert message.attempts == 1 and retry.run_after == message.next_attempt_at


def test_the_demo_sends_on_a_background_thread_and_writes_to_local_mail(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in {"EMAIL_URL", "MAIL_TASK_BACKEND"}}
    code = ("import config.settings.local as s; print(s.TASKS[s.MAIL_TASK_BACKEND]['BACKEND']); "
            "print(s.EMAIL_BACKEND); print(s.EMAIL_FILE_PATH)")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["classifier.task_backends.BackgroundThreadBackend", "notifications.backends.EmlFileBackend",
                   str(root / ".local" / "mail")]
