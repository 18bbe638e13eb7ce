#!/usr/bin/env python3
"""A fake Twilio Messages API for parlae's tests and `make demo`.

Built from the Twilio Messages API documentation, not from any client: HTTP Basic
auth AccountSid:AuthToken, a form-encoded body with To, From (or MessagingServiceSid) and Body,
Twilio's error object {"code","message","more_info","status"} with Twilio's codes, and 201 with
the message resource on success.  A control API under /__fake/ (JSON, no auth) lists the
messages sent, injects faults and reports counters; see tests/fakes/README.md.

Python 3 standard library only.  One lock guards all state.
"""

import base64
import binascii
import json
import math
import os
import re
import secrets
import sys
import time
import traceback
from urllib.parse import parse_qsl, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402
from fakelib import json_reply  # noqa: E402

DEFAULT_ACCOUNT_SID = "AC00000000000000000000000000000000"
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token"
API_VERSION = "2010-04-01"
MAX_BODY = 1 << 20
MAX_SMS_CHARS = 1600

REASONS = {
    200: "OK", 201: "CREATED", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN",
    404: "NOT FOUND", 405: "METHOD NOT ALLOWED", 413: "REQUEST ENTITY TOO LARGE",
    429: "TOO MANY REQUESTS", 500: "INTERNAL SERVER ERROR", 502: "BAD GATEWAY",
    503: "SERVICE UNAVAILABLE", 504: "GATEWAY TIMEOUT",
}

# What a fault with a status and no body answers: Twilio's error object.
FAULT_DEFAULTS = {
    400: (20001, "Invalid parameter"),
    401: (20003, "Authenticate"),
    403: (20403, "Forbidden"),
    404: (20404, "The requested resource was not found"),
    405: (20004, "Method not allowed"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
    504: (20504, "Gateway Timeout"),
}

# Twilio's magic test numbers (as with test credentials): a valid-looking To that fails.
MAGIC_TO = {
    "+15005550001": (21211, "Invalid 'To' Phone Number: +15005550001"),
    "+15005550002": (21612, "The 'To' phone number: +15005550002, is not currently reachable "
                            "using the 'From' phone number via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region "
                            "indicated by the 'To' number: +15005550003."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number +15005550009 is not a valid mobile number"),
}

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM7_EXT = set("^{}\\[~]|€\f")

E164 = re.compile(r"\+[1-9][0-9]{7,14}")
SHORT_CODE = re.compile(r"[0-9]{5,6}")
ALPHA_SENDER = re.compile(r"(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
MG_SID = re.compile(r"MG[0-9a-f]{32}")
MESSAGES = re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages(?:/(SM[0-9a-fA-F]{32}))?\.json")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def rfc2822(t):
    """Twilio's dates: 'Thu, 24 Aug 2023 05:01:45 +0000'."""
    g = time.gmtime(t)
    return "%s, %02d %s %d %02d:%02d:%02d +0000" % (
        _DAYS[g.tm_wday], g.tm_mday, _MONTHS[g.tm_mon - 1], g.tm_year,
        g.tm_hour, g.tm_min, g.tm_sec)


def valid_phone(s):
    """E.164 as Twilio's number parser sees it: +, a country code, a plausible length; NANP
    (+1) numbers have exactly ten digits and an area code that does not start with 0 or 1."""
    if not E164.fullmatch(s):
        return False
    if s.startswith("+1"):
        return len(s) == 12 and s[2] not in "01"
    return True


def segments(body):
    """How many SMS segments Twilio bills: GSM-7 (160, or 153 per part) else UCS-2 (70 / 67)."""
    if all(c in GSM7_BASIC or c in GSM7_EXT for c in body):
        n = sum(2 if c in GSM7_EXT else 1 for c in body)
        return 1 if n <= 160 else math.ceil(n / 153)
    n = len(body.encode("utf-16-le")) // 2
    return 1 if n <= 70 else math.ceil(n / 67)


def twilio_error(status, code, message, headers=None):
    return json_reply(status, {"code": code, "message": message,
                               "more_info": f"https://www.twilio.com/docs/errors/{code}",
                               "status": status}, headers)


class TwilioError(Exception):
    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


def fail(status, code, message, headers=None):
    raise TwilioError(twilio_error(status, code, message, headers))


class State(fakelib.State):
    """(account_sid, auth_token, latency_ms) from the command line; faults as fakelib's."""

    def reset(self):
        self.account_sid, self.auth_token, self.latency_ms = self.initial
        self.messages = []
        self.reset_faults()
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": 0, "created": 0, "unauthorized": 0, "rejected": 0,
                         "faults": 0, "errors": {}}

    def count_error(self, code):
        fakelib.bump(self.counters["errors"], str(code))

    # ---- the API --------------------------------------------------------------------------

    def authenticate(self, header):
        """Basic AccountSid:AuthToken, else 401 20003."""
        user = password = None
        if header and header[:6].lower() == "basic ":
            try:
                user, _, password = base64.b64decode(header[6:].strip(), validate=True) \
                    .decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                user = None
        if user is None or not (secrets.compare_digest(user.encode(), self.account_sid.encode()) and
                                secrets.compare_digest(password.encode(), self.auth_token.encode())):
            self.counters["unauthorized"] += 1
            fail(401, 20003, "Authenticate", {"WWW-Authenticate": 'Basic realm="Twilio API"'})
        return user

    def resource(self, m):
        sid = m["sid"]
        base = f"/{API_VERSION}/Accounts/{m['account_sid']}/Messages/{sid}"
        return {
            "account_sid": m["account_sid"], "api_version": API_VERSION, "body": m["body"],
            "date_created": rfc2822(m["created"]), "date_sent": None,
            "date_updated": rfc2822(m["created"]), "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": m["from"],
            "messaging_service_sid": m["messaging_service_sid"],
            "num_media": str(len(m["media_url"])), "num_segments": str(segments(m["body"])),
            "price": None, "price_unit": "USD", "sid": sid, "status": m["status"],
            "subresource_uris": {"media": f"{base}/Media.json"}, "to": m["to"],
            "uri": f"{base}.json",
        }

    def create(self, account, form):
        def one(name):
            v = form.get(name)
            return v[-1] if v else ""

        to, frm, body = one("To"), one("From"), one("Body")
        mg = one("MessagingServiceSid")
        media = [u for u in form.get("MediaUrl", []) if u]
        if not to:
            fail(400, 21604, "A 'To' phone number is required.")
        if not body and not media:
            fail(400, 21602, "Message body is required.")
        if not frm and not mg:
            fail(400, 21603, "A 'From' phone number is required.")
        if not valid_phone(to):
            fail(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if frm and not (valid_phone(frm) or SHORT_CODE.fullmatch(frm) or
                        ALPHA_SENDER.fullmatch(frm)):
            fail(400, 21212, f"Invalid 'From' Phone Number: {frm}")
        if mg and not MG_SID.fullmatch(mg):
            fail(400, 21701, f"The Messaging Service Sid {mg} is invalid.")
        if frm and frm == to:
            fail(400, 21266, "'To' and 'From' number cannot be the same: " + to)
        if len(body) > MAX_SMS_CHARS:
            fail(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        if to in MAGIC_TO:
            code, msg = MAGIC_TO[to]
            fail(400, code, msg)
        m = {"sid": "SM" + secrets.token_hex(16), "account_sid": account, "to": to,
             "from": frm or None, "body": body, "messaging_service_sid": mg or None,
             "media_url": media, "status": "accepted" if mg and not frm else "queued",
             "created": time.time()}
        self.messages.append(m)
        self.counters["created"] += 1
        return json_reply(201, self.resource(m))

    def api(self, method, path, query, headers, raw):
        user = self.authenticate(headers.get("Authorization"))
        m = MESSAGES.fullmatch(path)
        if not m or m.group(1) != user:
            fail(404, 20404, f"The requested resource {path} was not found")
        if m.group(2):
            if method != "GET":
                fail(405, 20004, "Method not allowed")
            for msg in self.messages:
                if msg["sid"] == m.group(2) and msg["account_sid"] == user:
                    return json_reply(200, self.resource(msg))
            fail(404, 20404, f"The requested resource {path} was not found")
        if method == "GET":
            items = [self.resource(x) for x in reversed(self.messages) if x["account_sid"] == user]
            if "To" in query:
                items = [x for x in items if x["to"] == query["To"]]
            try:
                size = max(1, min(1000, int(query.get("PageSize", "50"))))
            except ValueError:
                fail(400, 20001, "Invalid PageSize")
            uri = f"/{API_VERSION}/Accounts/{user}/Messages.json?PageSize={size}&Page=0"
            return json_reply(200, {"messages": items[:size], "end": max(0, min(size, len(items)) - 1),
                                    "first_page_uri": uri, "next_page_uri": None, "page": 0,
                                    "page_size": size, "previous_page_uri": None,
                                    "start": 0, "uri": uri})
        if method != "POST":
            fail(405, 20004, "Method not allowed")
        ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        form = {}
        if ctype == "application/x-www-form-urlencoded":
            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                fail(400, 20001, "The request body is not valid UTF-8")
            for k, v in pairs:
                form.setdefault(k, []).append(v)
        return self.create(user, form)


def fault_error(status, headers):
    status = status or 500
    code, msg = FAULT_DEFAULTS.get(status, (20500 if status >= 500 else 20001, "Error"))
    return twilio_error(status, code, msg, headers)


def fault_reply(f):
    return fakelib.fault_answer(f, fakelib.fault_headers(f), fault_error)


def message_view(m):
    return {"sid": m["sid"], "to": m["to"], "from": m["from"], "body": m["body"],
            "account_sid": m["account_sid"], "messaging_service_sid": m["messaging_service_sid"],
            "media_url": m["media_url"], "status": m["status"],
            "date_created": rfc2822(m["created"])}


def own_control(state, method, name, query, body, b):
    """The control endpoints of this fake (fakelib.control has the common ones)."""
    if method == "GET":
        if name == "messages":
            items = [message_view(m) for m in state.messages]
            if "to" in query:
                items = [m for m in items if m["to"] == query["to"]]
            return 200, items
        return None
    if name == "messages/clear":
        state.messages = []
        return 200, []
    if name == "account":
        if "account_sid" in b:
            state.account_sid = str(b["account_sid"])
        if "auth_token" in b:
            state.auth_token = str(b["auth_token"])
        return 200, {"account_sid": state.account_sid}
    return None


class Handler(fakelib.Handler):
    server_version = "FakeTwilio/1.0"
    log_name = "fake-twilio"
    max_body = MAX_BODY
    reasons = REASONS
    unknown_reason = "UNKNOWN"
    fault_reply = staticmethod(fault_reply)

    def dispatch(self):
        state = self.server.state
        parts = urlsplit(self.path)
        path = parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send(twilio_error(413, 20001, "The request body is too large"))
            return

        if path.startswith("/__fake/"):
            self.send(json_reply(*fakelib.control_answer(state, self.command, path, query, raw,
                                                         own_control)))
            return

        with state.lock:
            state.counters["requests"] += 1
            fault = state.take_fault(self.command, path)
            latency = state.latency_ms
        fakelib.pause(latency, fault)
        if fakelib.cuts(fault, "before"):
            self.apply_fault(fault)
            return
        try:
            with state.lock:
                try:
                    reply = state.api(self.command, path, query, self.headers, raw)
                except TwilioError as e:
                    reply = e.reply
                    if reply.status != 401:
                        if reply.status == 400:
                            state.counters["rejected"] += 1
                        code = json.loads(reply.body).get("code")
                        state.count_error(code)
        except Exception:  # a bug in the fake: answer like Twilio would, and say so on stderr
            traceback.print_exc(file=sys.stderr)
            reply = twilio_error(500, 20500, "Internal Server Error")
        self.send_after(fault, reply)


def main(argv=None):
    ap = fakelib.arg_parser("A fake Twilio Messages API for tests.")
    ap.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    ap.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    fakelib.latency_option(ap, "added to every Twilio request")
    args = ap.parse_args(argv)
    return fakelib.serve(args, Handler, State,
                         (args.account_sid, args.auth_token, args.latency_ms))


if __name__ == "__main__":
    sys.exit(main())
