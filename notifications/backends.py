"""The demo's mailbox: each message a .eml file under EMAIL_FILE_PATH (.local/mail/), which any
mail client opens. Django's file backend writes .log files holding many messages each."""
from __future__ import annotations

import logging
from pathlib import Path
from uuid import uuid4

from django.core.mail.backends.filebased import EmailBackend as FileBackend
from django.utils import timezone

logger = logging.getLogger(__name__)


class EmlFileBackend(FileBackend):
    def write_message(self, message) -> None:
        name = f"{timezone.now():%Y%m%d-%H%M%S}-{uuid4().hex[:8]}.eml"
        path = Path(self.file_path) / name
        path.write_bytes(message.message().as_bytes(linesep="\r\n"))
        logger.info("mail to %s written to %s", ", ".join(message.recipients()), path)

    def send_messages(self, email_messages) -> int:
        for message in email_messages:
            self.write_message(message)
        return len(email_messages)
