"""A real SMTP server for the delivery tests (aiosmtpd).

Listens on 127.0.0.1, on a free port chosen by the OS, prints
`PORT <n>` on stdout once it accepts connections, and saves each message it
accepts as `<n>.eml` in --maildir, with the envelope (MAIL FROM, RCPT TO) in
`<n>.json` beside it. Runs until stdin closes or it is killed.

Modes:
  --mode plain      no TLS
  --mode starttls   STARTTLS offered and required (needs --cert/--key)
  --mode implicit   TLS from the first byte, as on port 465 (needs --cert/--key)

--user/--password require AUTH LOGIN/PLAIN with those credentials.
--reply "451 4.3.0 Try again later" answers every DATA with that line instead
of accepting the message (to test transient/permanent classification); each
such attempt is counted in `attempts.txt`.
--slow-rcpt ADDRESS --slow-seconds S: a message for ADDRESS is answered (and
saved) only S seconds after the end of its DATA, as a server that is slow to
take a message (to test sends cut short while the reply is owed). A client
that hangs up meanwhile cancels it: it is never saved.
"""

import argparse
import asyncio
import json
import os
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Handler:
    def __init__(self, maildir, reply, slow_rcpt=None, slow_seconds=0.0):
        self.maildir = maildir
        self.reply = reply
        self.slow_rcpt = slow_rcpt
        self.slow_seconds = slow_seconds
        self.count = 0
        self.attempts = 0

    async def handle_DATA(self, server, session, envelope):
        if self.slow_rcpt and self.slow_rcpt in envelope.rcpt_tos:
            # aiosmtpd cancels this handler when the client hangs up.
            await asyncio.sleep(self.slow_seconds)
        if self.reply:
            self.attempts += 1
            with open(os.path.join(self.maildir, "attempts.txt"), "w") as f:
                f.write(str(self.attempts))
            return self.reply
        self.count += 1
        base = os.path.join(self.maildir, str(self.count))
        with open(base + ".json.tmp", "w") as f:
            json.dump({"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}, f)
        os.replace(base + ".json.tmp", base + ".json")
        # Written under a temporary name and renamed, so a reader never sees
        # half a message.
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.replace(base + ".eml.tmp", base + ".eml")
        return "250 Message accepted for delivery"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = auth_data.login.decode() == user and auth_data.password.decode() == password
        # handled=False: aiosmtpd then answers 535 itself on failure.
        return AuthResult(success=ok, handled=False)

    return check


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--maildir", required=True)
    p.add_argument("--mode", choices=["plain", "starttls", "implicit"], default="plain")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--reply")
    p.add_argument("--slow-rcpt")
    p.add_argument("--slow-seconds", type=float, default=0.0)
    args = p.parse_args()

    tls = None
    if args.mode != "plain":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)

    handler = Handler(args.maildir, args.reply, args.slow_rcpt, args.slow_seconds)
    kwargs = {}
    if args.user:
        kwargs["authenticator"] = authenticator(args.user, args.password)
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = args.mode != "plain"
    if args.mode == "starttls":
        kwargs["tls_context"] = tls
        kwargs["require_starttls"] = True

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost", **kwargs),
        host="127.0.0.1",
        port=0,
        ssl=tls if args.mode == "implicit" else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"PORT {port}", flush=True)

    # Stop when the test closes our stdin (or dies).
    stdin_closed = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stdin_closed.set() if not sys.stdin.readline() else None)
    await stdin_closed.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
