"""A real SMTP server for tests (aiosmtpd): accepts every message and
writes it to a directory, as the raw message (N.eml) and as JSON parsed by
Python's own `email` package (N.json: recipients, subject, plain text,
attachments), a MIME reader independent of the one that wrote it.

Usage: smtp_sink.py DIR PORT. Runs until SIGTERM or SIGINT.
"""

import json
import os
import signal
import sys
import time
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, out):
        self.out = out

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        msg = message_from_bytes(raw, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        attachments = []
        for part in msg.iter_attachments():
            content = part.get_content()
            if isinstance(content, bytes):
                content = content.decode("utf-8", "replace")
            attachments.append(
                {
                    "filename": part.get_filename(),
                    "content_type": part.get_content_type(),
                    "body": content,
                }
            )
        parsed = {
            "mail_from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "from": str(msg["from"]),
            "subject": str(msg["subject"]),
            "text": body.get_content() if body is not None else "",
            "attachments": attachments,
        }
        name = str(time.time_ns())
        with open(os.path.join(self.out, name + ".eml"), "wb") as f:
            f.write(raw)
        # Written under a temporary name and renamed: a reader never sees
        # half a message.
        tmp = os.path.join(self.out, "." + name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(parsed, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(self.out, name + ".json"))
        return "250 OK"


def main():
    out, port = sys.argv[1], int(sys.argv[2])
    controller = Controller(Sink(out), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    controller.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
