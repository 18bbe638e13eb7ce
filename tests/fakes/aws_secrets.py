#!/usr/bin/env python3
"""A fake AWS Secrets Manager for parlae's tests.

Built from the AWS Secrets Manager API reference and AWS's published
behaviour, not from any client: the awsJson1.1 protocol (`POST /`, `Content-Type:
application/x-amz-json-1.1`, `X-Amz-Target: secretsmanager.<Operation>`), Signature Version 4
verified for real (the canonical request and the string to sign are rebuilt from the request and
the signature recomputed from the configured secret key), version stages with the
UpdateSecretVersionStage compare-and-swap, and AWS's `{"__type","Message"}` errors.  A control
API under /__fake/ (JSON, no auth) sets keys and the clock, injects faults, shows every secret
and reports counters; see tests/fakes/README.md.

Python 3 standard library only.  One lock guards all state.
"""

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
import traceback
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, unquote

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402
from fakelib import ControlError, bump  # noqa: E402

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
# AWS's own documentation example key pair.
DEFAULT_AKID = "AKIAIOSFODNN7EXAMPLE"
DEFAULT_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SERVICE = "secretsmanager"
ALGORITHM = "AWS4-HMAC-SHA256"
JSON_TYPE = "application/x-amz-json-1.1"
MAX_BODY = 1 << 20
MAX_SKEW = 900
MAX_LOG = 200

OPERATIONS = ("CreateSecret", "GetSecretValue", "PutSecretValue", "UpdateSecretVersionStage",
              "DescribeSecret", "ListSecrets", "DeleteSecret", "RestoreSecret")

# Secrets Manager's modelled exceptions carry "Message"; the framework's (authentication,
# throttling, validation, serialization) carry "message", as AWS answers them.
MODELED = {"ResourceNotFoundException", "ResourceExistsException", "InvalidParameterException",
           "InvalidRequestException", "InvalidNextTokenException", "InternalServiceError",
           "LimitExceededException", "EncryptionFailure", "DecryptionFailure",
           "PreconditionNotMetException", "MalformedPolicyDocumentException"}

REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Request Entity Too Large", 429: "Too Many Requests",
           500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
           504: "Gateway Timeout"}

# What a fault with a status and no body answers.
FAULT_DEFAULTS = {
    400: ("ThrottlingException", "Rate exceeded"),
    429: ("ThrottlingException", "Rate exceeded"),
    500: ("InternalServiceError", "An error occurred on the server side."),
    503: ("ServiceUnavailable", "The request has failed due to a temporary failure of the server."),
}
FAULT_5XX = ("InternalFailure", "The request processing has failed because of an unknown error, "
                                "exception or failure.")

NAME_RE = re.compile(r"[A-Za-z0-9/_+=.@!-]+")
AMZ_DATE_RE = re.compile(r"\d{8}T\d{6}Z")


def amz_date(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def parse_amz_date(s):
    if not AMZ_DATE_RE.fullmatch(s or ""):
        return None
    try:
        return datetime.strptime(s, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def aws_time(t):
    """AWS JSON timestamps: epoch seconds, milliseconds as the fraction."""
    return round(t, 3)


def sha256_hex(b):
    return hashlib.sha256(b).hexdigest()


def hmac256(key, msg):
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = hmac256(("AWS4" + secret).encode("utf-8"), date)
    k = hmac256(k, region)
    k = hmac256(k, service)
    return hmac256(k, "aws4_request")


def uri_encode(s):
    return quote(s, safe="-_.~")


def canonical_uri(raw_path):
    """Each segment URI-encoded once (RFC 3986 unreserved characters kept)."""
    path = raw_path or "/"
    return "/".join(uri_encode(unquote(seg)) for seg in path.split("/")) or "/"


def canonical_query(raw_query):
    pairs = []
    for part in (raw_query or "").split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        pairs.append((uri_encode(unquote(k.replace("+", "%20"))),
                      uri_encode(unquote(v.replace("+", "%20")))))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def trimall(v):
    return re.sub(r"\s+", " ", v.strip())


def json_reply(status, obj, headers=None, content_type=JSON_TYPE):
    return fakelib.json_reply(status, obj, headers, content_type)


def aws_error_body(etype, message):
    return {"__type": etype, ("Message" if etype in MODELED else "message"): message}


class AwsError(Exception):
    def __init__(self, status, etype, message, auth=None):
        super().__init__(message)
        self.status, self.etype, self.message, self.auth = status, etype, message, auth

    def reply(self):
        return json_reply(self.status, aws_error_body(self.etype, self.message),
                          {"x-amzn-RequestId": str(uuid.uuid4())})


def auth_fail(kind, etype, message):
    raise AwsError(400, etype, message, auth=kind)


def fail(etype, message, status=400):
    raise AwsError(status, etype, message)


# ---- SigV4 ---------------------------------------------------------------------------------

def parse_authorization(value):
    """'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...' → dict or error."""
    value = (value or "").strip()
    scheme, _, rest = value.partition(" ")
    if scheme != ALGORITHM:
        auth_fail("incomplete", "IncompleteSignatureException",
                  f"Authorization header requires '{ALGORITHM}' as its algorithm "
                  f"(found '{scheme}').")
    params = {}
    for item in rest.split(","):
        k, eq, v = item.strip().partition("=")
        if eq:
            params[k.strip()] = v.strip()
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if not params.get(k)]
    if missing:
        auth_fail("incomplete", "IncompleteSignatureException",
                  " ".join(f"Authorization header requires '{k}' parameter." for k in missing) +
                  f" Authorization={value}")
    return params


def verify_sigv4(state, method, raw_path, raw_query, headers, body):
    """Authenticate one request; returns the access key id.  Called with the lock held."""
    auth = headers.get("authorization")
    if not auth:
        auth_fail("missing", "MissingAuthenticationTokenException", "Missing Authentication Token")
    auth = auth[-1]
    p = parse_authorization(auth)

    cred = p["Credential"].split("/")
    if len(cred) != 5 or not cred[0]:
        auth_fail("incomplete", "IncompleteSignatureException",
                  "Credential must have exactly 5 slash-delimited elements, e.g. "
                  f"keyid/date/region/service/term, got '{p['Credential']}'")
    akid, cdate, cregion, cservice, term = cred

    signed = p["SignedHeaders"].split(";")
    if any(not h or h != h.lower() for h in signed):
        auth_fail("incomplete", "IncompleteSignatureException",
                  f"SignedHeaders must be lowercase names separated by ';', got "
                  f"'{p['SignedHeaders']}'")
    if "host" not in signed and ":authority" not in signed:
        auth_fail("incomplete", "IncompleteSignatureException",
                  "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    xdate = headers.get("x-amz-date")
    if not xdate:
        auth_fail("incomplete", "IncompleteSignatureException",
                  "Authorization header requires existence of either a 'X-Amz-Date' or a "
                  "'Date' header.")
    xdate = xdate[-1].strip()
    if "x-amz-date" not in signed:
        auth_fail("incomplete", "IncompleteSignatureException",
                  "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
    when = parse_amz_date(xdate)
    if when is None:
        auth_fail("incomplete", "IncompleteSignatureException",
                  f"Date must be in ISO-8601 'basic format'. Got '{xdate}'. See "
                  "http://en.wikipedia.org/wiki/ISO_8601")

    if term != "aws4_request":
        auth_fail("scope", "InvalidSignatureException",
                  f"Credential should be scoped with a valid terminator: 'aws4_request', "
                  f"not '{term}'.")
    if cservice != SERVICE:
        auth_fail("scope", "InvalidSignatureException",
                  f"Credential should be scoped to correct service: '{SERVICE}'. ")
    if cregion != state.region:
        auth_fail("scope", "InvalidSignatureException",
                  f"Credential should be scoped to a valid region, not '{cregion}'. ")
    if cdate != xdate[:8]:
        auth_fail("scope", "InvalidSignatureException",
                  f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                  f"date from HTTP: '{cdate}' != '{xdate[:8]}', from '{xdate}'.")

    now = state.now()
    if when < now - state.max_skew:
        auth_fail("skew", "InvalidSignatureException",
                  f"Signature expired: {xdate} is now earlier than {amz_date(now - state.max_skew)} "
                  f"({amz_date(now)} - {state.max_skew // 60} min.)")
    if when > now + state.max_skew:
        auth_fail("skew", "InvalidSignatureException",
                  f"Signature not yet current: {xdate} is still later than "
                  f"{amz_date(now + state.max_skew)} ({amz_date(now)} + {state.max_skew // 60} min.)")

    key = state.keys.get(akid)
    if key is None:
        auth_fail("unknown_key", "UnrecognizedClientException",
                  "The security token included in the request is invalid.")
    token = headers.get("x-amz-security-token")
    token = token[-1].strip() if token else None
    if key["session_token"] is not None:
        if token is None or not secrets.compare_digest(token.encode(),
                                                       key["session_token"].encode()):
            auth_fail("token", "UnrecognizedClientException",
                      "The security token included in the request is invalid.")
        if "x-amz-security-token" not in signed:
            auth_fail("incomplete", "IncompleteSignatureException",
                      "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.")
        if key["expired"]:
            auth_fail("expired_token", "ExpiredTokenException",
                      "The security token included in the request is expired")
    elif token is not None:
        # A long-term key with a session token is a mismatch, as AWS treats it.
        auth_fail("token", "UnrecognizedClientException",
                  "The security token included in the request is invalid.")

    payload = sha256_hex(body)
    declared = headers.get("x-amz-content-sha256")
    if declared and declared[-1].strip() != payload:
        auth_fail("payload_hash", "InvalidSignatureException",
                  "The provided 'x-amz-content-sha256' header does not match what was computed.")

    lines = []
    absent = []
    for name in sorted(set(signed)):
        vals = headers.get(name)
        if vals is None:
            absent.append(name)
            continue
        lines.append(f"{name}:{','.join(trimall(v) for v in vals)}\n")
    signed_line = ";".join(sorted(set(signed)))
    creq = "\n".join([method, canonical_uri(raw_path), canonical_query(raw_query),
                      "".join(lines), signed_line, payload])
    scope = f"{cdate}/{cregion}/{cservice}/{term}"
    sts = "\n".join([ALGORITHM, xdate, scope, sha256_hex(creq.encode("utf-8"))])
    want = hmac.new(signing_key(key["secret"], cdate, cregion, cservice), sts.encode("utf-8"),
                    hashlib.sha256).hexdigest()
    got = p["Signature"].strip().lower()
    if absent or not secrets.compare_digest(want.encode(), got.encode()):
        msg = ("The request signature we calculated does not match the signature you provided. "
               "Check your AWS Secret Access Key and signing method. Consult the service "
               "documentation for details.")
        if absent:
            msg += " Signed header(s) not in the request: " + ", ".join(absent) + "."
        msg += ("\n\nThe Canonical String for this request should have been\n'" + creq +
                "'\n\nThe String-to-Sign should have been\n'" + sts + "'\n")
        auth_fail("signature", "InvalidSignatureException", msg)
    return akid


# ---- the service ---------------------------------------------------------------------------

class State(fakelib.State):
    """The command line's arguments; faults (fakelib's) are matched on the operation."""

    FAULT_FIELDS = ("operation", "secret_id", "count", "skip", "delay_ms", "status", "type",
                    "message", "body", "close", "truncate", "when", "headers", "content_type")
    FAULT_READ = dict(fakelib.FAULT_READ, operation=lambda f: str(f.get("operation") or "*"))

    def reset(self):
        a = self.initial
        self.region = a.region
        self.account_id = a.account_id
        self.latency_ms = a.latency_ms
        self.clock_offset = 0.0
        self.max_skew = MAX_SKEW
        self.keys = {}
        self.set_key({"access_key_id": a.access_key_id, "secret_access_key": a.secret_access_key,
                      "session_token": a.session_token})
        self.secrets = {}
        self.reset_faults()
        self.log = []
        self.seq = 0
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": 0, "operations": {}, "outcomes": {}, "errors": {},
                         "auth_failures": {}, "signature_failures": 0, "faults": 0}

    def now(self):
        return time.time() + self.clock_offset

    # ---- keys -----------------------------------------------------------------------------

    def set_key(self, k):
        if not isinstance(k, dict):
            raise ControlError("a key is an object")
        akid = str(k.get("access_key_id") or "")
        secret = k.get("secret_access_key")
        if not akid or not secret:
            raise ControlError("a key needs access_key_id and secret_access_key")
        token = k.get("session_token")
        token = str(token) if token else None
        if akid.startswith("ASIA") and token is None:
            raise ControlError("a temporary key (ASIA...) needs a session_token")
        self.keys[akid] = {"secret": str(secret), "session_token": token,
                           "expired": bool(k.get("expired", False))}

    def keys_view(self):
        return [{"access_key_id": a, "secret_access_key": k["secret"],
                 "session_token": k["session_token"], "expired": k["expired"]}
                for a, k in self.keys.items()]

    # ---- counting -------------------------------------------------------------------------

    def count(self, op, outcome, auth=None):
        bump(self.counters["outcomes"].setdefault(op, {}), outcome)
        if outcome != "ok":
            bump(self.counters["errors"], outcome)
        if auth:
            bump(self.counters["auth_failures"], auth)
            if auth in ("signature", "payload_hash"):
                self.counters["signature_failures"] += 1

    def record(self, entry):
        self.seq += 1
        entry["seq"] = self.seq
        self.log.append(entry)
        if len(self.log) > MAX_LOG:
            del self.log[:len(self.log) - MAX_LOG]

    # ---- faults (fakelib's, matched on the operation) -----------------------------------

    def check_fault(self, fault):
        if fault["operation"] != "*" and fault["operation"] not in OPERATIONS:
            raise ControlError("operation is one of " + ", ".join(OPERATIONS) + " or *")
        if fault["type"] is not None and fault["status"] is None:
            fault["status"] = 400

    def fault_matches(self, f, op, secret_id):
        return f["operation"] in ("*", op) and (f["secret_id"] is None or
                                                f["secret_id"] == secret_id)

    # ---- secrets --------------------------------------------------------------------------

    def arn(self, name):
        suffix = "".join(secrets.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789") for _ in range(6))
        return f"arn:aws:secretsmanager:{self.region}:{self.account_id}:secret:{name}-{suffix}"

    def find(self, secret_id, live=True):
        """A secret by name or full ARN; ResourceNotFound, or InvalidRequest when deleted."""
        s = self.secrets.get(secret_id)
        if s is None and secret_id.startswith("arn:"):
            s = next((x for x in self.secrets.values() if x["arn"] == secret_id), None)
        if s is None:
            fail("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
        if live and s["deleted"] is not None:
            fail("InvalidRequestException", "You can't perform this operation on the secret "
                                            "because it was marked for deletion.")
        return s

    @staticmethod
    def holder(s, stage):
        for vid, v in s["versions"].items():
            if stage in v["stages"]:
                return vid
        return None

    def attach(self, s, stage, vid):
        """Move STAGE to VID (from whichever version holds it); AWSCURRENT drags AWSPREVIOUS."""
        old = self.holder(s, stage)
        if old == vid:
            return
        if old is not None:
            s["versions"][old]["stages"].remove(stage)
        s["versions"][vid]["stages"].append(stage)
        if stage == "AWSCURRENT" and old is not None:
            self.attach(s, "AWSPREVIOUS", old)

    def new_version(self, s, vid, string, binary, stages):
        now = self.now()
        s["versions"][vid] = {"string": string, "binary": binary, "stages": [], "created": now}
        s["order"].append(vid)
        first = self.holder(s, "AWSCURRENT") is None
        for st in stages:
            self.attach(s, st, vid)
        if first and "AWSCURRENT" not in s["versions"][vid]["stages"]:
            self.attach(s, "AWSCURRENT", vid)
        s["changed"] = now

    def new_secret(self, name, description=None):
        now = self.now()
        s = {"name": name, "arn": self.arn(name), "created": now, "changed": now,
             "accessed": None, "deleted": None, "deletion_date": None,
             "description": description, "versions": {}, "order": []}
        self.secrets[name] = s
        return s

    def stages_map(self, s):
        return {vid: list(s["versions"][vid]["stages"]) for vid in s["order"]
                if s["versions"][vid]["stages"]}

    def secret_view(self, s):
        cur = self.holder(s, "AWSCURRENT")
        return {"name": s["name"], "arn": s["arn"], "created": aws_time(s["created"]),
                "deleted": s["deleted"] is not None,
                "deletion_date": aws_time(s["deletion_date"]) if s["deletion_date"] else None,
                "current": s["versions"][cur]["string"] if cur else None,
                "current_version": cur,
                "stages": {st: self.holder(s, st) for v in s["versions"].values()
                           for st in v["stages"]},
                "versions": {vid: {"value": s["versions"][vid]["string"],
                                   "binary": s["versions"][vid]["binary"],
                                   "stages": list(s["versions"][vid]["stages"]),
                                   "created": aws_time(s["versions"][vid]["created"])}
                             for vid in s["order"]},
                "version_order": list(s["order"])}


# ---- request validation --------------------------------------------------------------------

def member(body, name, required=False, kind=str):
    v = body.get(name)
    if v is None:
        if required:
            field = name[0].lower() + name[1:]
            fail("ValidationException", f"1 validation error detected: Value null at '{field}' "
                                        "failed to satisfy constraint: Member must not be null")
        return None
    if kind is str and not isinstance(v, str):
        fail("SerializationException", f"{name} must be a string")
    if kind is int and (isinstance(v, bool) or not isinstance(v, int)):
        fail("SerializationException", f"{name} must be an integer")
    if kind is bool and not isinstance(v, bool):
        fail("SerializationException", f"{name} must be a boolean")
    if kind is list and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
        fail("SerializationException", f"{name} must be a list of strings")
    return v


def length(value, name, lo, hi):
    if value is None:
        return
    field = name[0].lower() + name[1:]
    n = len(value)
    if n < lo:
        fail("ValidationException", f"1 validation error detected: Value '{value}' at '{field}' "
                                    f"failed to satisfy constraint: Member must have length "
                                    f"greater than or equal to {lo}")
    if n > hi:
        shown = value if len(value) <= 80 else value[:80] + "..."
        fail("ValidationException", f"1 validation error detected: Value '{shown}' at '{field}' "
                                    f"failed to satisfy constraint: Member must have length "
                                    f"less than or equal to {hi}")


def version_token(body, name="ClientRequestToken"):
    tok = member(body, name)
    length(tok, name, 32, 64)
    return tok


def secret_value(body):
    string = member(body, "SecretString")
    length(string, "SecretString", 0, 65536)
    binary = member(body, "SecretBinary")
    if binary is not None:
        try:
            base64.b64decode(binary, validate=True)
        except (binascii.Error, ValueError):
            fail("SerializationException", "SecretBinary must be base64")
    if string is not None and binary is not None:
        fail("InvalidParameterException",
             "You can't specify both SecretString and SecretBinary in the same request.")
    return string, binary


def stage_list(body):
    stages = member(body, "VersionStages", kind=list)
    if stages is None:
        return None
    length(stages, "VersionStages", 1, 20)
    for st in stages:
        length(st, "VersionStages", 1, 256)
    return list(dict.fromkeys(stages))


# ---- operations ----------------------------------------------------------------------------

def op_create(state, body):
    name = member(body, "Name", required=True)
    length(name, "Name", 1, 512)
    if not NAME_RE.fullmatch(name):
        fail("InvalidParameterException", "Invalid name. Must be a valid name containing "
                                          "alphanumeric characters, or any of the following: "
                                          "-/_+=.@!")
    token = version_token(body)
    string, binary = secret_value(body)
    desc = member(body, "Description")
    s = state.secrets.get(name)
    if s is not None:
        if s["deleted"] is not None:
            fail("InvalidRequestException", "You can't create this secret because a secret with "
                                            "this name is already scheduled for deletion.")
        v = s["versions"].get(token) if token else None
        if v is None:
            fail("ResourceExistsException",
                 f"The operation failed because the secret {name} already exists.")
        if v["string"] != string or v["binary"] != binary:
            fail("ResourceExistsException",
                 "You can't modify an existing version, you can only create a new version.")
        return {"ARN": s["arn"], "Name": name, "VersionId": token}
    s = state.new_secret(name, desc)
    out = {"ARN": s["arn"], "Name": name}
    if string is not None or binary is not None:
        vid = token or str(uuid.uuid4())
        state.new_version(s, vid, string, binary, ["AWSCURRENT"])
        out["VersionId"] = vid
    return out


def op_get(state, body):
    sid = member(body, "SecretId", required=True)
    length(sid, "SecretId", 1, 2048)
    vid = member(body, "VersionId")
    length(vid, "VersionId", 32, 64)
    stage = member(body, "VersionStage")
    length(stage, "VersionStage", 1, 256)
    s = state.find(sid)
    if vid is not None:
        v = s["versions"].get(vid)
        if v is None or (stage is not None and stage not in v["stages"]):
            what = f"VersionId: {vid}" + (f" and staging label: {stage}" if stage else "")
            fail("ResourceNotFoundException",
                 f"Secrets Manager can't find the specified secret value for {what}")
    else:
        stage = stage or "AWSCURRENT"
        vid = state.holder(s, stage)
        if vid is None:
            fail("ResourceNotFoundException",
                 f"Secrets Manager can't find the specified secret value for staging label: {stage}")
        v = s["versions"][vid]
    now = state.now()
    s["accessed"] = now - (now % 86400)
    out = {"ARN": s["arn"], "Name": s["name"], "VersionId": vid,
           "VersionStages": list(v["stages"]), "CreatedDate": aws_time(v["created"])}
    if v["string"] is not None:
        out["SecretString"] = v["string"]
    if v["binary"] is not None:
        out["SecretBinary"] = v["binary"]
    return out


def op_put(state, body):
    sid = member(body, "SecretId", required=True)
    length(sid, "SecretId", 1, 2048)
    token = version_token(body)
    string, binary = secret_value(body)
    if string is None and binary is None:
        fail("InvalidRequestException", "You must provide either SecretString or SecretBinary.")
    stages = stage_list(body)
    s = state.find(sid)
    token = token or str(uuid.uuid4())
    v = s["versions"].get(token)
    if v is not None:
        if v["string"] != string or v["binary"] != binary:
            fail("ResourceExistsException",
                 "You can't modify an existing version, you can only create a new version.")
        return {"ARN": s["arn"], "Name": s["name"], "VersionId": token,
                "VersionStages": list(v["stages"])}
    state.new_version(s, token, string, binary, stages if stages is not None else ["AWSCURRENT"])
    return {"ARN": s["arn"], "Name": s["name"], "VersionId": token,
            "VersionStages": list(s["versions"][token]["stages"])}


def op_stage(state, body):
    sid = member(body, "SecretId", required=True)
    length(sid, "SecretId", 1, 2048)
    stage = member(body, "VersionStage", required=True)
    length(stage, "VersionStage", 1, 256)
    move = member(body, "MoveToVersionId")
    length(move, "MoveToVersionId", 32, 64)
    remove = member(body, "RemoveFromVersionId")
    length(remove, "RemoveFromVersionId", 32, 64)
    s = state.find(sid)
    if move is None and remove is None:
        fail("InvalidParameterException",
             "You must specify MoveToVersionId, RemoveFromVersionId or both.")
    if move is not None and move not in s["versions"]:
        fail("ResourceNotFoundException",
             f"Secrets Manager can't find the specified secret version: {move}")
    cur = state.holder(s, stage)
    if remove is not None and remove != cur:
        fail("InvalidParameterException",
             f"The staging label {stage} is not attached to version {remove}: "
             "RemoveFromVersionId must be the version that currently holds it.")
    if move is not None:
        if cur is not None and cur != move and remove is None:
            fail("InvalidParameterException",
                 f"The staging label {stage} is attached to a different version; specify "
                 "RemoveFromVersionId to move it.")
        if cur != move:
            state.attach(s, stage, move)
            s["changed"] = state.now()
    else:
        if stage == "AWSCURRENT":
            fail("InvalidParameterException",
                 "You can't remove the staging label AWSCURRENT from a version; move it to "
                 "another version instead.")
        s["versions"][remove]["stages"].remove(stage)
        s["changed"] = state.now()
    return {"ARN": s["arn"], "Name": s["name"]}


def describe(state, s, versions_key):
    out = {"ARN": s["arn"], "Name": s["name"], "CreatedDate": aws_time(s["created"]),
           "LastChangedDate": aws_time(s["changed"]), versions_key: state.stages_map(s)}
    if s["description"] is not None:
        out["Description"] = s["description"]
    if s["accessed"] is not None:
        out["LastAccessedDate"] = aws_time(s["accessed"])
    if s["deleted"] is not None:
        out["DeletedDate"] = aws_time(s["deleted"])
    return out


def op_describe(state, body):
    sid = member(body, "SecretId", required=True)
    length(sid, "SecretId", 1, 2048)
    return describe(state, state.find(sid, live=False), "VersionIdsToStages")


def op_list(state, body):
    maxr = member(body, "MaxResults", kind=int)
    if maxr is not None and not 1 <= maxr <= 100:
        fail("ValidationException", f"1 validation error detected: Value '{maxr}' at "
                                    "'maxResults' failed to satisfy constraint: Member must "
                                    f"have value {'greater' if maxr < 1 else 'less'} than or "
                                    f"equal to {1 if maxr < 1 else 100}")
    maxr = maxr or 100
    token = member(body, "NextToken")
    include_deleted = member(body, "IncludePlannedDeletion", kind=bool) or False
    filters = body.get("Filters") or []
    if not isinstance(filters, list):
        fail("SerializationException", "Filters must be a list")
    names = sorted(state.secrets)
    after = None
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode("utf-8")
            if not after.startswith("n:"):
                raise ValueError
            after = after[2:]
        except (binascii.Error, ValueError, UnicodeDecodeError):
            fail("InvalidNextTokenException", "The NextToken value is invalid.")
    items = []
    for n in names:
        s = state.secrets[n]
        if after is not None and n <= after:
            continue
        if s["deleted"] is not None and not include_deleted:
            continue
        if not all(filter_ok(f, s) for f in filters):
            continue
        items.append(s)
    page, rest = items[:maxr], items[maxr:]
    out = {"SecretList": [describe(state, s, "SecretVersionsToStages") for s in page]}
    if rest:
        out["NextToken"] = base64.urlsafe_b64encode(("n:" + page[-1]["name"]).encode()).decode()
    return out


def filter_ok(f, s):
    """Filters {Key: name|description|all, Values: [...]}: prefix match, '!' negates."""
    if not isinstance(f, dict) or not isinstance(f.get("Values", []), list):
        fail("SerializationException", "a filter is {Key, Values}")
    key = f.get("Key")
    if key not in ("name", "description", "all", "tag-key", "tag-value", "primary-region",
                   "owning-service"):
        fail("ValidationException", f"1 validation error detected: Value '{key}' at "
                                    "'filters.1.member.key' failed to satisfy constraint: Member "
                                    "must satisfy enum value set")
    fields = {"name": [s["name"]], "description": [s["description"] or ""],
              "all": [s["name"], s["description"] or ""]}.get(key, [])
    hit = False
    for val in f.get("Values") or []:
        neg = val.startswith("!")
        val = val[1:] if neg else val
        match = any(x.lower().startswith(val.lower()) for x in fields)
        if match != neg:
            hit = True
    return hit


def op_delete(state, body):
    sid = member(body, "SecretId", required=True)
    length(sid, "SecretId", 1, 2048)
    days = member(body, "RecoveryWindowInDays", kind=int)
    force = member(body, "ForceDeleteWithoutRecovery", kind=bool)
    if days is not None and force:
        fail("InvalidParameterException", "You can't use ForceDeleteWithoutRecovery in "
                                          "conjunction with RecoveryWindowInDays.")
    if days is not None and not 7 <= days <= 30:
        fail("InvalidParameterException", "The RecoveryWindowInDays value must be between 7 and "
                                          "30 days (inclusive).")
    s = state.find(sid, live=False)
    now = state.now()
    if force:
        del state.secrets[s["name"]]
        return {"ARN": s["arn"], "Name": s["name"], "DeletionDate": aws_time(now)}
    if s["deleted"] is not None:
        fail("InvalidRequestException", "You can't perform this operation on the secret because "
                                        "it was already scheduled for deletion.")
    s["deleted"] = now
    s["deletion_date"] = now + 86400 * (days or 30)
    return {"ARN": s["arn"], "Name": s["name"], "DeletionDate": aws_time(s["deletion_date"])}


def op_restore(state, body):
    sid = member(body, "SecretId", required=True)
    s = state.find(sid, live=False)
    s["deleted"] = s["deletion_date"] = None
    return {"ARN": s["arn"], "Name": s["name"]}


HANDLERS = {"CreateSecret": op_create, "GetSecretValue": op_get, "PutSecretValue": op_put,
            "UpdateSecretVersionStage": op_stage, "DescribeSecret": op_describe,
            "ListSecrets": op_list, "DeleteSecret": op_delete, "RestoreSecret": op_restore}


def target_op(headers):
    t = headers.get("x-amz-target")
    if not t:
        return None
    prefix, dot, op = t[-1].strip().partition(".")
    return op if dot and prefix == SERVICE and op in HANDLERS else None


def api(state, method, raw_path, raw_query, headers, raw):
    """One Secrets Manager request, lock held → (operation, dict answer) or AwsError."""
    verify_sigv4(state, method, raw_path, raw_query, headers, raw)
    op = target_op(headers)
    if method != "POST" or raw_path != "/":
        raise AwsError(404, "UnknownOperationException",
                       f"{method} {raw_path} is not a Secrets Manager operation")
    if op is None:
        t = (headers.get("x-amz-target") or [""])[-1]
        fail("UnknownOperationException", f"Unknown operation '{t}'" if t else
             "X-Amz-Target is required")
    ctype = (headers.get("content-type") or [""])[-1].split(";")[0].strip().lower()
    if ctype != JSON_TYPE:
        fail("SerializationException", f"Content-Type must be {JSON_TYPE}, not '{ctype}'")
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError):
        fail("SerializationException", "The request body is not valid JSON")
    if not isinstance(body, dict):
        fail("SerializationException", "Start of list found where not expected")
    return HANDLERS[op](state, body)


def fault_reply(f):
    headers = fakelib.fault_headers(f)
    headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))

    def error(status, headers):
        status = status or 500
        etype, msg = FAULT_DEFAULTS.get(status, FAULT_5XX if status >= 500 else
                                        ("ThrottlingException", "Rate exceeded"))
        return json_reply(status, aws_error_body(f["type"] or etype, f["message"] or msg),
                          headers)
    return fakelib.fault_answer(f, headers, error, JSON_TYPE, empty_204=False)


# ---- control API ---------------------------------------------------------------------------

def own_control(state, method, name, query, body, b):
    """The control endpoints of this fake (fakelib.control has the common ones)."""
    if method == "GET":
        if name == "secrets":
            if "name" in query:
                s = state.secrets.get(query["name"])
                if s is None:
                    return 404, {"error": f"no secret {query['name']}"}
                return 200, state.secret_view(s)
            pre = query.get("prefix", "")
            return 200, {n: state.secret_view(s) for n, s in sorted(state.secrets.items())
                         if n.startswith(pre)}
        if name == "keys":
            return 200, state.keys_view()
        if name == "clock":
            return 200, clock_view(state)
        if name == "options":
            return 200, options_view(state)
        if name == "requests":
            n = max(1, min(MAX_LOG, int(query.get("n", "50"))))
            return 200, state.log[-n:]
        return None
    if name == "keys":
        items = body if isinstance(body, list) else [b]
        for k in items:
            state.set_key(k)
        return 200, state.keys_view()
    if name == "keys/remove":
        akid = str(b.get("access_key_id") or "")
        if akid not in state.keys:
            raise ControlError(f"no key {akid}")
        del state.keys[akid]
        return 200, state.keys_view()
    if name == "clock":
        if "offset" in b:
            state.clock_offset = float(b["offset"])
        if "max_skew" in b:
            state.max_skew = int(b["max_skew"])
        return 200, clock_view(state)
    if name == "options":
        if "region" in b:
            state.region = str(b["region"])
        if "account_id" in b:
            state.account_id = str(b["account_id"])
        return 200, options_view(state)
    if name == "secrets":
        items = body if isinstance(body, list) else [b]
        return 200, [seed(state, x) for x in items]
    if name == "secrets/delete":
        n = str(b.get("name") or "")
        if n not in state.secrets:
            raise ControlError(f"no secret {n}")
        del state.secrets[n]
        return 200, {"deleted": n}
    if name == "secrets/clear":
        state.secrets = {}
        return 200, {}
    return None


def clock_view(state):
    now = state.now()
    return {"offset": state.clock_offset, "max_skew": state.max_skew, "now": amz_date(now),
            "epoch": aws_time(now)}


def options_view(state):
    return {"region": state.region, "account_id": state.account_id,
            "latency_ms": state.latency_ms}


def seed(state, x):
    """{name, value, version_id, stages}: create the secret if needed and add a version as
    PutSecretValue would (no checks on the token's length, no idempotency)."""
    if not isinstance(x, dict) or not x.get("name"):
        raise ControlError("a seeded secret needs a name")
    n = str(x["name"])
    s = state.secrets.get(n) or state.new_secret(n, x.get("description"))
    if "value" in x:
        vid = str(x.get("version_id") or uuid.uuid4())
        if vid in s["versions"]:
            raise ControlError(f"version {vid} exists")
        stages = x.get("stages") or ["AWSCURRENT"]
        if not isinstance(stages, list):
            raise ControlError("stages is a list")
        state.new_version(s, vid, str(x["value"]), None, [str(st) for st in stages])
    return state.secret_view(s)


# ---- HTTP ----------------------------------------------------------------------------------

class Handler(fakelib.Handler):
    server_version = "FakeAwsSecretsManager/1.0"
    log_name = "fake-aws"
    max_body = MAX_BODY
    reasons = REASONS
    bare_204 = False
    fault_reply = staticmethod(fault_reply)

    def header_map(self):
        """Lower-case name → every value, in order (SigV4 joins repeats with commas)."""
        out = {}
        for k, v in self.headers.items():
            out.setdefault(k.lower(), []).append(v)
        return out

    def dispatch(self):
        state = self.server.state
        raw_path, _, raw_query = self.path.partition("?")
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send(json_reply(413, aws_error_body("SerializationException",
                                                     "The request body is too large")))
            return

        if raw_path.startswith("/__fake/"):
            query = dict(parse_qsl(raw_query, keep_blank_values=True))
            status, obj = fakelib.control_answer(state, self.command, raw_path, query, raw,
                                                 own_control)
            self.send(json_reply(status, obj, content_type="application/json"))
            return

        headers = self.header_map()
        op = target_op(headers) or "unknown"
        secret_id = None
        try:
            j = json.loads(raw) if raw.strip() else {}
            if isinstance(j, dict):
                secret_id = j.get("SecretId") or j.get("Name")
        except ValueError:
            pass
        with state.lock:
            state.counters["requests"] += 1
            bump(state.counters["operations"], op)
            fault = state.take_fault(op, secret_id)
            latency = state.latency_ms
        fakelib.pause(latency, fault)
        entry = {"operation": op, "secret_id": secret_id, "access_key_id": None,
                 "status": None, "type": None, "auth_error": None,
                 "fault": fault["id"] if fault else None}
        if fakelib.cuts(fault, "before"):
            with state.lock:
                state.record(entry)
            self.apply_fault(fault)
            return
        m = re.search(r"Credential=([^/,\s]*)", (headers.get("authorization") or [""])[-1])
        entry["access_key_id"] = m.group(1) if m else None
        try:
            with state.lock:
                try:
                    reply = json_reply(200, api(state, self.command, raw_path, raw_query,
                                                headers, raw),
                                       {"x-amzn-RequestId": str(uuid.uuid4())})
                    state.count(op, "ok")
                except AwsError as e:
                    reply = e.reply()
                    entry["type"], entry["auth_error"] = e.etype, e.auth
                    state.count(op, e.etype, e.auth)
                entry["status"] = reply.status
                state.record(entry)
        except Exception:  # a bug in the fake: answer as AWS would, and say so on stderr
            traceback.print_exc(file=sys.stderr)
            reply = json_reply(500, aws_error_body("InternalServiceError",
                                                   "An error occurred on the server side."))
        self.send_after(fault, reply)


def main(argv=None):
    ap = fakelib.arg_parser("A fake AWS Secrets Manager for tests.")
    ap.add_argument("--access-key-id", default=DEFAULT_AKID)
    ap.add_argument("--secret-access-key", default=DEFAULT_SECRET)
    ap.add_argument("--session-token", default=None,
                    help="the key is temporary: requests must carry X-Amz-Security-Token")
    ap.add_argument("--region", default=DEFAULT_REGION)
    ap.add_argument("--account-id", default=DEFAULT_ACCOUNT, help="used in ARNs")
    fakelib.latency_option(ap, "added to every API request")
    args = ap.parse_args(argv)
    if args.access_key_id.startswith("ASIA") and not args.session_token:
        ap.error("a temporary key (ASIA...) needs --session-token")
    return fakelib.serve(args, Handler, State, args)


if __name__ == "__main__":
    sys.exit(main())
