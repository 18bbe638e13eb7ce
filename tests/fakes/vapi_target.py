#!/usr/bin/env python3
"""A fake deployed Vapi-webhook backend: what `parlae vapi tool invoke --target` and
`parlae vapi replay --target` send to.

Built from Vapi's documentation of server messages: it verifies each request the
way a backend verifying Vapi would -- `X-Vapi-Secret`, `Authorization: Bearer`, or HMAC-SHA256
over "<x-timestamp>.<raw body>" within +-300 s -- and answers tool calls in Vapi's reply shape.
A control API under /__fake/ (JSON, no auth) sets the mode and secret, injects faults, and shows
the last requests and the counters; see tests/fakes/README.md.

It is benchmarked (thousands of requests against wrk), so the request path is lean: a small
HTTP/1.1 parser instead of http.server's (and fakelib's Handler), one write per answer,
keep-alive, TCP_NODELAY, no per-request logging, only the last 100 requests kept.  The process,
the faults and the control API's common endpoints are fakelib's.  Python 3 standard library only.
"""

import collections
import hashlib
import hmac
import json
import os
import re
import socket
import socketserver
import struct
import sys
import time
import traceback
from urllib.parse import parse_qsl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402
from fakelib import ControlError, compact  # noqa: E402

DEFAULT_SECRET = "fake-vapi-secret"
MODES = ("secret", "hmac", "bearer", "none")
MAX_BODY = 4 << 20
MAX_HEADERS = 100
KEEP = 100
OK_MESSAGE = "ok from fake target"

REASONS = {
    100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Payload Too Large", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}

TS_RE = re.compile(r"[0-9]{1,16}")
UNAUTHORIZED = b'{"error":"unauthorized"}'


class BadRequest(Exception):
    pass


class State(fakelib.State):
    """(mode, secret, skew, latency_ms) from the command line; faults as fakelib's, less
    truncate (the answers are small)."""

    FAULT_FIELDS = tuple(n for n in fakelib.HTTP_FAULT if n != "truncate")
    FAULT_BODY_ASCII = False

    def reset(self):
        self.mode, self.secret, self.skew, self.latency_ms = self.initial
        self.secret_b = self.secret.encode()
        self.reset_faults()
        self.requests = collections.deque(maxlen=KEEP)
        self.seq = 0
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": 0, "authorized": 0, "unauthorized": 0, "malformed": 0,
                         "faults": 0}

    def set_auth(self, b):
        if "mode" in b:
            mode = str(b["mode"])
            if mode not in MODES:
                raise ControlError("mode is one of " + ", ".join(MODES))
            self.mode = mode
        if "secret" in b:
            self.secret = str(b["secret"])
            self.secret_b = self.secret.encode()
        if "skew" in b:
            self.skew = int(b["skew"])
        return {"mode": self.mode, "secret": self.secret, "skew": self.skew}


# ---- what a backend verifying Vapi does ---------------------------------------------------------

def check_auth(mode, secret, skew, headers, raw):
    """None when the request is authentic, else why not (kept in /__fake/requests)."""
    if mode == "none":
        return None
    if mode == "secret":
        got = headers.get("x-vapi-secret")
        if got is None:
            return "missing X-Vapi-Secret"
        return None if hmac.compare_digest(got.encode("latin-1"), secret) else "wrong X-Vapi-Secret"
    if mode == "bearer":
        got = headers.get("authorization")
        if got is None:
            return "missing Authorization"
        scheme, _, token = got.partition(" ")
        if scheme.lower() != "bearer":
            return "Authorization is not Bearer"
        return None if hmac.compare_digest(token.strip().encode("latin-1"), secret) \
            else "wrong bearer token"
    ts = headers.get("x-timestamp")
    sig = headers.get("x-signature")
    if ts is None or sig is None:
        return "missing x-timestamp or x-signature"
    if not TS_RE.fullmatch(ts):
        return "x-timestamp is not a Unix time"
    t = int(ts)
    if t >= 100000000000:  # milliseconds (10^11 s is the year 5138)
        t /= 1000.0
    if abs(time.time() - t) > skew:
        return "x-timestamp outside the allowed window"
    want = hmac.new(secret, ts.encode() + b"." + raw, hashlib.sha256).hexdigest().encode()
    return None if hmac.compare_digest(sig.encode("latin-1"), want) else "bad x-signature"


def ok_result(name):
    return compact({"success": True, "message": OK_MESSAGE, "tool": name})


def call_name(c):
    fn = c.get("function")
    if isinstance(fn, dict) and fn.get("name") is not None:
        return fn.get("name")
    return c.get("name")


def answer(doc):
    """The backend's reply to a verified message: (status, body bytes)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("message"), dict):
        raise BadRequest("no message object")
    msg = doc["message"]
    kind = msg.get("type")
    if kind == "tool-calls":
        for key in ("toolCallList", "toolCalls"):
            calls = msg.get(key)
            if isinstance(calls, list) and calls:
                break
        else:
            calls = [x.get("toolCall") for x in msg.get("toolWithToolCallList") or []
                     if isinstance(x, dict)]
        results, seen = [], set()
        for c in calls:
            if not isinstance(c, dict):
                continue
            cid = c.get("id")
            if cid is not None:
                if cid in seen:
                    continue
                seen.add(cid)
            name = call_name(c)
            results.append({"toolCallId": cid, "name": name, "result": ok_result(name)})
        return 200, compact({"results": results}).encode()
    if kind == "function-call":
        fc = msg.get("functionCall")
        name = fc.get("name") if isinstance(fc, dict) else None
        return 200, compact({"result": ok_result(name)}).encode()
    return 200, b"{}"


def fault_reply(f):
    status = f["status"] or 200
    headers = [(str(k), str(v)) for k, v in f["headers"].items()]
    if f["retry_after"] is not None:
        headers.append(("Retry-After", fakelib.retry_after_value(f["retry_after"])))
    if f["content_type"]:
        headers.append(("Content-Type", f["content_type"]))
    if f["body"] is not None:
        body = f["body"].encode()
    elif status == 204:
        body = b""
    else:
        body = compact({"error": REASONS.get(status, "error").lower()}).encode()
    return status, body, headers


def own_control(state, method, name, query, body, b):
    """The control endpoints of this fake (fakelib.control has the common ones)."""
    if method == "GET":
        if name == "requests":
            items = list(state.requests)
            n = int(query.get("n", KEEP))
            return 200, items[-n:] if n > 0 else []
        if name == "auth":
            return 200, {"mode": state.mode, "secret": state.secret, "skew": state.skew}
        return None
    if name == "auth":
        return 200, state.set_auth(b)
    if name == "requests/clear":
        state.requests.clear()
        return 200, []
    return None


# ---- HTTP: a small HTTP/1.1 server loop ----------------------------------------------------------

class Handler(socketserver.StreamRequestHandler):
    timeout = 120  # an idle keep-alive connection is dropped after this

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self):
        try:
            while self.one():
                pass
        except (ConnectionError, socket.timeout, TimeoutError, OSError):
            pass

    def write(self, status, body, keep, headers=(), content_type=b"application/json"):
        head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
            status, REASONS.get(status, "Unknown").encode(), content_type, len(body))
        for k, v in headers:
            head += f"{k}: {v}\r\n".encode("latin-1")
        if not keep:
            head += b"Connection: close\r\n"
        elif self.http10:
            head += b"Connection: keep-alive\r\n"
        self.wfile.write(head + b"\r\n" + (b"" if self.method == b"HEAD" else body))

    def one(self):
        """One request; False to close the connection."""
        rfile = self.rfile
        line = rfile.readline(8193)
        while line in (b"\r\n", b"\n"):
            line = rfile.readline(8193)
        if not line:
            return False
        self.method, self.http10 = b"GET", False
        parts = line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1.") or len(line) > 8192:
            self.write(400, b'{"error":"bad request line"}', False)
            return False
        method, target, version = parts
        self.method = method
        self.http10 = version == b"HTTP/1.0"
        headers = {}
        n = 0
        while True:
            h = rfile.readline(8193)
            if h in (b"\r\n", b"\n"):
                break
            n += 1
            k, sep, v = h.partition(b":")
            if not h or not sep or n > MAX_HEADERS or len(h) > 8192:
                self.write(400 if n <= MAX_HEADERS else 431, b'{"error":"bad headers"}', False)
                return False
            headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        conn = headers.get("connection", "").lower()
        keep = ("keep-alive" in conn) if self.http10 else ("close" not in conn)
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = self.read_chunked()
            if raw is None:
                self.write(413, b'{"error":"body too large"}', False)
                return False
        else:
            try:
                clen = int(headers.get("content-length") or 0)
            except ValueError:
                clen = -1
            if clen < 0 or clen > MAX_BODY:
                self.write(413 if clen > 0 else 400, b'{"error":"bad Content-Length"}', False)
                return False
            if clen and headers.get("expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            raw = rfile.read(clen) if clen else b""
            if len(raw) != clen:
                return False
        status, body, extra, ctype, close = self.server.app(
            method.decode("latin-1"), target.decode("latin-1"), headers, raw)
        if close:
            if close == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            return False
        self.write(status, body, keep, extra, ctype)
        return keep

    def read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(8193) not in (b"\r\n", b"\n", b""):
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline(1024)
            if len(out) > MAX_BODY:
                return None


class Server(fakelib.Server):
    def app(self, method, target, headers, raw):
        """(status, body, extra headers, content type, close) for one request."""
        state = self.state
        path, _, qs = target.partition("?")
        if path.startswith("/__fake/"):
            query = dict(parse_qsl(qs, keep_blank_values=True))
            status, obj = fakelib.control_answer(state, method, path, query, raw, own_control)
            return status, compact(obj).encode(), (), b"application/json", None

        lock = state.lock
        with lock:
            state.counters["requests"] += 1
            fault = state.take_fault(method, path) if state.faults else None
            mode, secret, skew, latency = state.mode, state.secret_b, state.skew, state.latency_ms
        if fault or latency:  # (the common case, neither, makes no call)
            fakelib.pause(latency, fault)
            if fakelib.cuts(fault, "before"):
                return self.faulted(fault, method, path, headers, raw)

        why = check_auth(mode, secret, skew, headers, raw)
        if why is not None:
            status, body = 401, UNAUTHORIZED
        else:
            try:
                status, body = answer(json.loads(raw))
            except (ValueError, BadRequest) as e:
                why = "malformed: " + (str(e) if isinstance(e, BadRequest) else "invalid JSON")
                status, body = 400, compact({"error": why[len("malformed: "):]}).encode()
            except RecursionError:
                why = "malformed: nested too deeply"
                status, body = 400, b'{"error":"nested too deeply"}'
            except Exception:  # a bug in the fake: a 500, and say so on stderr
                traceback.print_exc(file=sys.stderr)
                why = "fake error"
                status, body = 500, b'{"error":"internal error"}'
        with lock:
            c = state.counters
            if status == 401:
                c["unauthorized"] += 1
            else:
                c["authorized"] += 1
                if status == 400:
                    c["malformed"] += 1
            self.record(method, path, headers, raw, status, why)
        if fault and fakelib.cuts(fault, "after"):
            return self.faulted(fault, method, path, headers, raw, record=False)
        return status, body, (), b"application/json", None

    def faulted(self, fault, method, path, headers, raw, record=True):
        if record:
            with self.state.lock:
                self.record(method, path, headers, raw, None, "fault")
        if fault["close"]:
            return 0, b"", (), b"", fault["close"] if fault["close"] == "reset" else "close"
        status, body, extra = fault_reply(fault)
        ctype = b"application/json"
        for k, v in extra:
            if k.lower() == "content-type":
                ctype = v.encode("latin-1")
        extra = [(k, v) for k, v in extra if k.lower() != "content-type"]
        return status, body, extra, ctype, None

    def record(self, method, path, headers, raw, status, why):
        """Called with the lock held."""
        st = self.state
        st.seq += 1
        st.requests.append({
            "seq": st.seq, "time": time.time(), "method": method, "path": path,
            "headers": headers, "body": raw.decode("utf-8", "replace"), "status": status,
            "fault": why == "fault",
            "authorized": None if why == "fault" else status != 401,
            "auth_error": why if status == 401 else None,
        })


def main(argv=None):
    ap = fakelib.arg_parser("A fake Vapi-webhook backend for tests and benchmarks.")
    ap.add_argument("--auth", choices=MODES, default="secret",
                    help="how requests are verified (default: secret)")
    ap.add_argument("--secret", default=DEFAULT_SECRET,
                    help="the X-Vapi-Secret value, bearer token or HMAC key")
    ap.add_argument("--skew", type=int, default=300,
                    help="hmac: seconds x-timestamp may differ from now (default 300)")
    fakelib.latency_option(ap, "added to every webhook request")
    args = ap.parse_args(argv)
    return fakelib.serve(args, Handler, State, (args.auth, args.secret, args.skew,
                                                args.latency_ms), server=Server)


if __name__ == "__main__":
    sys.exit(main())
