"""What the fakes of tests/fakes/ share: the process (options, 127.0.0.1, the port file, signals,
a threaded keep-alive server), the faults a test injects, the control API's common endpoints,
and an HTTP handler that reads bodies and sends replies.  Each fake keeps only its service.

The fakes run as scripts: each puts its own directory on sys.path and imports this module.
Python 3 standard library only.
"""

import argparse
import email.utils
import json
import os
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_UTF8 = "application/json; charset=utf-8"


def compact(obj, ascii=False):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=ascii)


def bump(counts, key, n=1):
    counts[key] = counts.get(key, 0) + n


class ControlError(Exception):
    """A bad control request: 400 {"error": message}."""


# ---- replies -----------------------------------------------------------------------------------

class Reply:
    def __init__(self, status, body=b"", headers=None, content_type=JSON_UTF8):
        self.status = status
        self.body = body if isinstance(body, bytes) else body.encode()
        self.headers = dict(headers or {})
        self.content_type = content_type
        self.truncate = False


def json_reply(status, obj, headers=None, content_type=JSON_UTF8, ascii=False):
    return Reply(status, compact(obj, ascii), headers, content_type)


# ---- faults ------------------------------------------------------------------------------------

# How a fault's fields are read from what the test posts; a field not here is taken as given.
FAULT_READ = {
    "method": lambda f: str(f.get("method") or "*").upper(),
    "path": lambda f: str(f.get("path") or "*"),
    "count": lambda f: int(f.get("count", 1)),
    "skip": lambda f: int(f.get("skip", 0)),
    "delay_ms": lambda f: int(f.get("delay_ms", 0)),
    "status": lambda f: int(f["status"]) if f.get("status") is not None else None,
    "close": lambda f: f.get("close", False),
    "truncate": lambda f: bool(f.get("truncate", False)),
    "when": lambda f: str(f.get("when") or "before"),
    "headers": lambda f: f.get("headers") or {},
}

# The fields of a fault matched on the method and the path, in the order they are shown.
HTTP_FAULT = ("method", "path", "count", "skip", "delay_ms", "status", "body", "retry_after",
              "close", "truncate", "when", "headers", "content_type")


def path_matches(pattern, path):
    """Exact, "prefix*" or "*"."""
    return (pattern == "*" or pattern == path or
            (pattern.endswith("*") and path.startswith(pattern[:-1])))


def cuts(fault, when):
    """Whether FAULT answers in place of the fake at WHEN ("before" or "after" the fake's own
    handling): it closes the connection or has a status or a body (a delay alone does not)."""
    return bool(fault and fault["when"] == when and
                (fault["close"] or fault["status"] is not None or fault["body"] is not None))


def pause(latency_ms, fault):
    """Sleep the fake's latency plus the fault's delay."""
    delay = latency_ms + (fault["delay_ms"] if fault else 0)
    if delay > 0:
        time.sleep(delay / 1000.0)


def retry_after_seconds(ra):
    """A fault's retry_after as seconds: N, or {"date": N}."""
    return ra["date"] if isinstance(ra, dict) else ra


def retry_after_value(ra):
    """The Retry-After header of retry_after: N as delay-seconds, {"date": N} as the HTTP-date
    (IMF-fixdate) N seconds after the answer leaves."""
    if isinstance(ra, dict):
        return email.utils.formatdate(time.time() + ra["date"], usegmt=True)
    return str(ra)


def fault_headers(f):
    """The fault's headers as strings, and Retry-After when it has retry_after."""
    headers = {str(k): str(v) for k, v in f["headers"].items()}
    if f.get("retry_after") is not None:
        headers["Retry-After"] = retry_after_value(f["retry_after"])
    return headers


def fault_answer(f, headers, default, content_type=JSON_UTF8, empty_204=True):
    """What a fault with a status or a body answers: its body verbatim (status 200 unless given),
    else nothing for 204 (when EMPTY_204), else default(status, headers), the fake's own error
    for that status."""
    status = f["status"]
    if f["body"] is not None:
        r = Reply(status or 200, f["body"], headers, content_type)
    elif status == 204 and empty_204:
        r = Reply(204, b"", headers, content_type)
    else:
        r = default(status, headers)
    if f["content_type"]:
        r.content_type = f["content_type"]
    r.truncate = f["truncate"]
    return r


class State:
    """What every fake's state has: one lock, the faults, the counters and a latency.  The fake
    sets its own state, latency_ms and counters in reset() and reset_counters(), and calls
    reset_faults() there."""

    FAULT_FIELDS = HTTP_FAULT
    FAULT_READ = FAULT_READ
    FAULT_BODY_ASCII = True  # a body given as JSON (not a string) is dumped with \uXXXX escapes

    def __init__(self, initial):
        self.initial = initial
        self.lock = threading.Lock()
        self.reset()

    def reset_faults(self):
        self.faults = []
        self.next_fault = 1

    def check_fault(self, fault):
        """The fake's own checks of a new fault, made before the common ones."""

    def fault_matches(self, f, method, path):
        return f["method"] in ("*", method) and path_matches(f["path"], path)

    def add_fault(self, f):
        if not isinstance(f, dict):
            raise ControlError("a fault is an object")
        extra = set(f) - set(self.FAULT_FIELDS)
        if extra:
            raise ControlError("unknown fault field(s): " + ", ".join(sorted(extra)))
        fault = {"id": self.next_fault}
        for name in self.FAULT_FIELDS:
            read = self.FAULT_READ.get(name)
            fault[name] = read(f) if read else f.get(name)
        self.check_fault(fault)
        if not isinstance(fault["headers"], dict):
            raise ControlError("headers is an object")
        if fault["when"] not in ("before", "after"):
            raise ControlError("when is 'before' or 'after'")
        if fault["close"] not in (False, True, "close", "reset"):
            raise ControlError("close is true, \"close\" or \"reset\"")
        ra = fault.get("retry_after")
        if isinstance(ra, dict) and (set(ra) != {"date"} or not isinstance(ra["date"], (int, float))):
            raise ControlError("retry_after is seconds or {\"date\": seconds from now}")
        if fault["body"] is not None and not isinstance(fault["body"], str):
            fault["body"] = compact(fault["body"], self.FAULT_BODY_ASCII)
        self.next_fault += 1
        self.faults.append(fault)
        return fault

    def take_fault(self, *request):
        """The first live fault matching this request (fault_matches), counted down and
        counted; spent faults go.  None if none applies.  Called with the lock held."""
        for f in self.faults:
            if f["count"] == 0 or not self.fault_matches(f, *request):
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


# ---- the control API ---------------------------------------------------------------------------

def control(state, method, path, query, body, own, *args):
    """Route /__fake/... with the lock held → (status, object).  The endpoints every fake has
    are here; own(state, method, name, query, body, b, *args) answers the fake's own (b: the
    body if it is an object, else {}), or None when it has no such endpoint."""
    b = body if isinstance(body, dict) else {}
    name = path[len("/__fake/"):].strip("/")
    if method == "GET":
        if name == "counters":
            return 200, state.counters
        if name == "faults":
            return 200, {"faults": state.faults}
        if name == "health":
            return 200, {"ok": True}
        return own(state, method, name, query, body, b, *args) or \
            (404, {"error": f"no control endpoint GET {path}"})
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
    return own(state, method, name, query, body, b, *args) or \
        (404, {"error": f"no control endpoint POST {path}"})


def control_answer(state, method, path, query, raw, own, *args, bad_json=None):
    """One control request → (status, object): the body parsed as JSON, routed with the lock
    held; a bad body or field → 400 {"error"} (BAD_JSON: the message for a body that is not
    JSON, else the parser's)."""
    with state.lock:
        try:
            try:
                body = json.loads(raw) if raw.strip() else None
            except ValueError:
                if bad_json is None:
                    raise
                raise ControlError(bad_json) from None
            return control(state, method, path, query, body, own, *args)
        except (ControlError, ValueError, TypeError, AttributeError, KeyError) as e:
            return 400, {"error": str(e) or type(e).__name__}


# ---- HTTP --------------------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """http.server's HTTP/1.1 keep-alive handler, quiet, every method going to dispatch().  The
    fake sets server_version, log_name, max_body, reasons and fault_reply, and may override
    send()."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    timeout = 120  # an idle keep-alive connection is dropped after this
    log_name = "fake"
    max_body = 1 << 20
    reasons = {}
    unknown_reason = "Unknown"
    bare_204 = True  # a 204 has no Content-Type, Content-Length or body

    def setup(self):
        super().setup()
        # Without this, Nagle and the client's delayed ACK add 40 ms to an answer written in
        # more than one piece on a keep-alive connection.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):  # no access log
        pass

    def log_error(self, fmt, *args):
        msg = fmt % args
        if "timed out" not in msg:
            sys.stderr.write(f"{self.log_name}: {msg}\n")

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def read_body(self):
        """The body (Content-Length or chunked); ValueError past max_body."""
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
                if len(out) > self.max_body:
                    raise ValueError("body too large")
        n = int(self.headers.get("Content-Length") or 0)
        if n > self.max_body:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def apply_fault(self, f):
        """Drop the connection (close), reset it ("reset"), or send the fault's reply."""
        if f["close"]:
            self.close_connection = True
            if f["close"] == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                self.connection.close()
            return
        self.send(self.fault_reply(f))

    def send_after(self, fault, reply):
        """Send REPLY, the fake's answer, unless an "after" fault replaces it; a truncating
        fault cuts it."""
        if cuts(fault, "after"):
            self.apply_fault(fault)
            return
        if fault and fault["truncate"]:
            reply.truncate = True
        self.send(reply)

    def send(self, reply):
        """Status line, headers and body in one write."""
        bare = self.bare_204 and reply.status == 204
        lines = [f"HTTP/1.1 {reply.status} {self.reasons.get(reply.status, self.unknown_reason)}",
                 f"Server: {self.server_version}"]
        if not bare:
            lines.append(f"Content-Type: {reply.content_type}")
            lines.append(f"Content-Length: {len(reply.body)}")
        for k, v in reply.headers.items():
            lines.append(f"{k}: {v}")
        if self.close_connection:
            lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            lines.append("Connection: keep-alive")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        body = b"" if self.command == "HEAD" or bare else reply.body
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


# ---- the process -------------------------------------------------------------------------------

def arg_parser(description):
    """--port and --port-file; the fake adds its own options, then latency_option()."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    ap.add_argument("--port-file", help="write the port here once listening (atomically)")
    return ap


def latency_option(ap, help):
    ap.add_argument("--latency-ms", type=int, default=0, help=help)


def serve(args, handler, make_state, *state_args, server=Server):
    """Listen on 127.0.0.1:args.port, give the server make_state(*state_args), write the port to
    args.port_file (temp file + rename), serve until SIGTERM or SIGINT; 0."""
    srv = server(("127.0.0.1", args.port), handler)
    srv.state = make_state(*state_args)
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
