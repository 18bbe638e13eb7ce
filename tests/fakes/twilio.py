#!/usr/bin/env python3
"""A fake Twilio Messages API for parlae's tests and `make demo`.

Built from ../shared/design/upstreams.md (the Twilio section), not from any client: HTTP Basic
auth AccountSid:AuthToken, a form-encoded body with To, From (or MessagingServiceSid) and Body,
Twilio's error object {"code","message","more_info","status"} with Twilio's codes, and 201 with
the message resource on success.  A control API under /__fake/ (JSON, no auth) lists the
messages sent, injects faults and reports counters; see tests/fakes/README.md.

Python 3 standard library only.  One lock guards all state.
"""

import argparse
import base64
import binascii
import json
import math
import os
import re
import secrets
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

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


class Reply:
    def __init__(self, status, body=b"", headers=None, content_type="application/json; charset=utf-8"):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.truncate = False


def json_reply(status, obj, headers=None):
    return Reply(status, json.dumps(obj, separators=(",", ":"), ensure_ascii=False), headers)


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


class ControlError(Exception):
    pass


class State:
    def __init__(self, account_sid, auth_token, latency_ms):
        self.initial = (account_sid, auth_token, latency_ms)
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.account_sid, self.auth_token, self.latency_ms = self.initial
        self.messages = []
        self.faults = []
        self.next_fault = 1
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": 0, "created": 0, "unauthorized": 0, "rejected": 0,
                         "faults": 0, "errors": {}}

    def count_error(self, code):
        k = str(code)
        self.counters["errors"][k] = self.counters["errors"].get(k, 0) + 1

    # ---- faults (the Sikka fake's shape) --------------------------------------------------

    def add_fault(self, f):
        if not isinstance(f, dict):
            raise ControlError("a fault is an object")
        known = {"method", "path", "status", "count", "skip", "delay_ms", "body", "retry_after",
                 "close", "truncate", "when", "headers", "content_type"}
        extra = set(f) - known
        if extra:
            raise ControlError("unknown fault field(s): " + ", ".join(sorted(extra)))
        fault = {"id": self.next_fault, "method": str(f.get("method") or "*").upper(),
                 "path": str(f.get("path") or "*"), "count": int(f.get("count", 1)),
                 "skip": int(f.get("skip", 0)), "delay_ms": int(f.get("delay_ms", 0)),
                 "status": int(f["status"]) if f.get("status") is not None else None,
                 "body": f.get("body"), "retry_after": f.get("retry_after"),
                 "close": f.get("close", False), "truncate": bool(f.get("truncate", False)),
                 "when": str(f.get("when") or "before"), "headers": f.get("headers") or {},
                 "content_type": f.get("content_type")}
        if not isinstance(fault["headers"], dict):
            raise ControlError("headers is an object")
        if fault["when"] not in ("before", "after"):
            raise ControlError("when is 'before' or 'after'")
        if fault["close"] not in (False, True, "close", "reset"):
            raise ControlError("close is true, \"close\" or \"reset\"")
        if fault["body"] is not None and not isinstance(fault["body"], str):
            fault["body"] = json.dumps(fault["body"], separators=(",", ":"))
        self.next_fault += 1
        self.faults.append(fault)
        return fault

    def take_fault(self, method, path):
        for f in self.faults:
            if f["count"] == 0 or f["method"] not in ("*", method):
                continue
            p = f["path"]
            if not (p == "*" or p == path or (p.endswith("*") and path.startswith(p[:-1]))):
                continue
            if f["skip"] > 0:
                f["skip"] -= 1
                continue
            if f["count"] > 0:
                f["count"] -= 1
            self.counters["faults"] += 1
            snapshot = dict(f)
            self.faults = [x for x in self.faults if x["count"] != 0]
            return snapshot
        return None

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


def fault_reply(f):
    status = f["status"]
    headers = {str(k): str(v) for k, v in f["headers"].items()}
    if f["retry_after"] is not None:
        headers["Retry-After"] = str(f["retry_after"])
    if f["body"] is not None:
        r = Reply(status or 200, f["body"], headers)
    elif status == 204:
        r = Reply(204, b"", headers)
    else:
        status = status or 500
        code, msg = FAULT_DEFAULTS.get(status, (20500 if status >= 500 else 20001, "Error"))
        r = twilio_error(status, code, msg, headers)
    if f["content_type"]:
        r.content_type = f["content_type"]
    r.truncate = f["truncate"]
    return r


def message_view(m):
    return {"sid": m["sid"], "to": m["to"], "from": m["from"], "body": m["body"],
            "account_sid": m["account_sid"], "messaging_service_sid": m["messaging_service_sid"],
            "media_url": m["media_url"], "status": m["status"],
            "date_created": rfc2822(m["created"])}


def control(state, method, path, query, body):
    """Route /__fake/...; called with the state lock held.  Returns (status, object)."""
    b = body if isinstance(body, dict) else {}
    name = path[len("/__fake/"):].strip("/")
    if method == "GET":
        if name == "messages":
            items = [message_view(m) for m in state.messages]
            if "to" in query:
                items = [m for m in items if m["to"] == query["to"]]
            return 200, items
        if name == "counters":
            return 200, state.counters
        if name == "faults":
            return 200, {"faults": state.faults}
        if name == "health":
            return 200, {"ok": True}
        return 404, {"error": f"no control endpoint GET {path}"}
    if method == "DELETE" and name == "faults":
        state.faults = []
        return 200, {"faults": []}
    if method != "POST":
        return 405, {"error": f"{method} not allowed on {path}"}
    if body is not None and not isinstance(body, (dict, list)):
        raise ControlError("the body must be a JSON object")
    if name == "reset":
        state.reset()
        return 200, {"ok": True}
    if name == "counters/reset":
        state.reset_counters()
        return 200, state.counters
    if name == "messages/clear":
        state.messages = []
        return 200, []
    if name == "account":
        if "account_sid" in b:
            state.account_sid = str(b["account_sid"])
        if "auth_token" in b:
            state.auth_token = str(b["auth_token"])
        return 200, {"account_sid": state.account_sid}
    if name == "latency":
        state.latency_ms = int(b.get("ms", 0))
        return 200, {"ms": state.latency_ms}
    if name == "faults":
        items = body if isinstance(body, list) else [b]
        added = [state.add_fault(f) for f in items]
        return 200, {"added": added, "faults": state.faults}
    if name == "faults/clear":
        state.faults = []
        return 200, {"faults": []}
    return 404, {"error": f"no control endpoint POST {path}"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeTwilio/1.0"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is dropped after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # no access log
        pass

    def log_error(self, fmt, *args):
        msg = fmt % args
        if "timed out" not in msg:
            sys.stderr.write(f"fake-twilio: {msg}\n")

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
                if len(out) > MAX_BODY:
                    raise ValueError("body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

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
            body = None
            with state.lock:
                try:
                    if raw.strip():
                        body = json.loads(raw)
                    status, obj = control(state, self.command, path, query, body)
                except (ControlError, ValueError, TypeError, AttributeError, KeyError) as e:
                    status, obj = 400, {"error": str(e) or type(e).__name__}
            self.send(json_reply(status, obj))
            return

        with state.lock:
            state.counters["requests"] += 1
            fault = state.take_fault(self.command, path)
            latency = state.latency_ms
        delay = latency + (fault["delay_ms"] if fault else 0)
        if delay > 0:
            time.sleep(delay / 1000.0)
        if fault and fault["when"] == "before" and self.fault_short_circuits(fault):
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
        if fault and fault["when"] == "after" and self.fault_short_circuits(fault):
            self.apply_fault(fault)
            return
        if fault and fault["truncate"]:
            reply.truncate = True
        self.send(reply)

    @staticmethod
    def fault_short_circuits(f):
        return bool(f["close"] or f["status"] is not None or f["body"] is not None)

    def apply_fault(self, f):
        if f["close"]:
            self.close_connection = True
            if f["close"] == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            return
        self.send(fault_reply(f))

    def send(self, reply):
        """Status line, headers and body in one write."""
        lines = [f"HTTP/1.1 {reply.status} {REASONS.get(reply.status, 'UNKNOWN')}",
                 f"Server: {self.server_version}"]
        if reply.status != 204:
            lines.append(f"Content-Type: {reply.content_type}")
            lines.append(f"Content-Length: {len(reply.body)}")
        for k, v in reply.headers.items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" or reply.status == 204 else reply.body
        if reply.truncate:
            body = body[:len(body) // 2]
            self.close_connection = True
        try:
            self.wfile.write(head + body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main(argv=None):
    ap = argparse.ArgumentParser(description="A fake Twilio Messages API for tests.")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--port-file", help="write the port here once listening (atomically)")
    ap.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    ap.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    ap.add_argument("--latency-ms", type=int, default=0, help="added to every Twilio request")
    args = ap.parse_args(argv)

    srv = Server(("127.0.0.1", args.port), Handler)
    srv.state = State(args.account_sid, args.auth_token, args.latency_ms)
    port = srv.server_address[1]
    if args.port_file:
        tmp = f"{args.port_file}.tmp.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)

    def stop(signum, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
