#!/usr/bin/env python3
"""A fake Sikka ONE API v4 for parlae's tests and `make demo`.

Built from the Sikka ONE API v4 documentation, not from any client: it checks
what Sikka checks and answers what Sikka answers -- every JSON value a string, times without a
zone, the error envelope with Sikka's codes and HTTP statuses.  A control API under /__fake/
(JSON, no auth) sets it up, injects faults and reports counters; see tests/fakes/README.md.

Python 3 standard library only.  One lock guards all state, so a refresh counts exactly once.
"""

import hashlib
import json
import os
import re
import secrets
import sys
import time
import traceback
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakelib  # noqa: E402
from fakelib import ControlError, Reply, bump  # noqa: E402

DEFAULT_APP_ID = "fake-app-id"
DEFAULT_APP_KEY = "fake-app-key"
SLOT_PMS = ("orthotrac", "dolphin", "planet dds")
MAX_BODY = 4 << 20

# .NET HttpStatusCode names, which is what Sikka puts in http_code_desc.
STATUS_DESC = {
    200: "OK", 201: "Created", 204: "NoContent", 302: "Found", 400: "BadRequest",
    401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
    408: "RequestTimeout", 409: "Conflict", 412: "PreconditionFailed", 413: "RequestEntityTooLarge",
    429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout",
}

# The envelope a fault gets when the test gives a status but no body.
FAULT_DEFAULTS = {
    400: ("API1026", "Invalid parameter", "The request is not valid."),
    401: ("API2003", "Authentication/Authorization Failed", "App id or app key is incorrect."),
    404: ("API2009", "Not found", "The resource was not found."),
    412: ("API2017", "SPU offline", "The practice's SPU is offline."),
    429: ("API2011", "Too many requests", "Rate limit exceeded."),
    500: ("API2001", "Internal server error", "An internal error occurred."),
    502: ("API2001", "Bad gateway", "An upstream error occurred."),
    503: ("API2002", "Service unavailable", "The server is overloaded; try again later."),
    504: ("API2022", "Gateway timeout", "The gateway timed out."),
}


def sikka_time(t):
    """Sikka's timestamps: no zone (we use UTC), no fraction."""
    return datetime.fromtimestamp(int(t), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def stringify(v):
    """Every value Sikka returns is a string: numbers and booleans included."""
    if isinstance(v, bool):
        return "True" if v else "False"
    if v is None:
        return ""
    if isinstance(v, dict):
        return {str(k): stringify(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [stringify(x) for x in v]
    return str(v)


def truthy(v):
    if isinstance(v, bool):
        return v
    return str(v).strip().lower() in ("1", "true", "yes", "on")


def digits(s):
    return re.sub(r"\D", "", str(s or ""))


def day_time(d):
    """A yyyy-mm-dd date as Sikka writes dates: yyyy-mm-ddT00:00:00."""
    d = str(d)
    return d + "T00:00:00" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", d) else d


def valid_date(s):
    try:
        datetime.strptime(s, "%Y-%m-%d")
        return True
    except (TypeError, ValueError):
        return False


def minutes(hhmm):
    m = re.fullmatch(r"(\d{1,2}):(\d{2})(?::\d{2})?", str(hhmm or "").strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        return None
    return int(m.group(1)) * 60 + int(m.group(2))


def default_secret(office_id, practice_id):
    return hashlib.sha256(f"fake-sikka/{office_id}/{practice_id}".encode()).hexdigest()[:32]


def json_reply(status, obj, headers=None):
    return fakelib.json_reply(status, obj, headers, ascii=True)


def sikka_reply(status, obj, headers=None):
    return json_reply(status, stringify(obj), headers)


def error(status, code, short, long="", more=""):
    return sikka_reply(status, {
        "http_code": status, "http_code_desc": STATUS_DESC.get(status, "Error"),
        "error_code": code, "short_message": short, "long_message": long or short,
        "more_information": more,
    })


class SikkaError(Exception):
    def __init__(self, reply):
        super().__init__(reply.status)
        self.reply = reply


def fail(status, code, short, long="", more=""):
    raise SikkaError(error(status, code, short, long, more))


class State(fakelib.State):
    """(app_id, app_key, latency_ms) from the command line; faults as fakelib's, and matched on
    a request_key body's grant_type too."""

    DATA_KINDS = ("patients", "appointments", "providers", "operatories", "slots")
    FAULT_FIELDS = fakelib.HTTP_FAULT + ("grant_type",)

    @property
    def latency_ms(self):  # a setting, as /__fake/state shows it
        return self.settings["latency_ms"]

    @latency_ms.setter
    def latency_ms(self, ms):
        self.settings["latency_ms"] = ms

    # ---- set-up ---------------------------------------------------------------------------

    def reset(self):
        self.app_id, self.app_key, latency, self.state_file = self.initial
        self.settings = {
            "key_lifetime": 86400, "code_lifetime": 600, "latency_ms": latency,
            "wrap_lists": False, "empty_as_204": False, "reuse_active_key": False,
            "refresh_revokes_old_key": False,
        }
        self.access = {}            # office -> set of practice ids with access ON
        self.practices = []
        self.set_practices([{"office_id": "D36225", "practice_id": "1",
                             "practice_name": "Happy Teeth Dental",
                             "practice_management_system": "Dentrix"}])
        self.authorize = {"office_id": None, "include_office_id": True, "deny": False,
                          "error": "access_denied", "redirect_office_id": None}
        self.codes = {}             # code -> {office_id, expires, used}
        self.request_keys = {}      # key -> entry
        self.refresh_keys = {}      # key -> entry
        self.data = {}              # office -> kind -> [items]
        self.spu_online = {}        # office -> bool (default True)
        self.uploaded = {}          # office -> bool (default True)
        self.writeback_cfg = {"pending_polls": 1, "fail": False, "result": "",
                              "reject_overlap": True}
        self.writebacks = {}
        self.next_writeback = 275495
        self.next_id = 1000
        self.reset_faults()
        self.reset_counters()

    def reset_counters(self):
        self.counters = {"requests": {}, "refreshes": {}, "invalid_refresh": {},
                         "grants": {"authorization_code": 0, "request_key": 0, "refresh_key": 0},
                         "writebacks": 0, "faults": 0}

    def set_practices(self, items):
        if not isinstance(items, list):
            raise ControlError("practices must be a list of objects")
        out = []
        for p in items:
            if not isinstance(p, dict) or not p.get("office_id"):
                raise ControlError("each practice needs an office_id")
            p = dict(p)
            p["office_id"] = str(p["office_id"])
            p.setdefault("practice_id", "1")
            p.setdefault("practice_name", f"Practice {p['office_id']}")
            p.setdefault("practice_management_system", "Dentrix")
            p.setdefault("secret_key", default_secret(p["office_id"], p["practice_id"]))
            p.setdefault("customer_id", life_customer_id(p["office_id"]))
            p.setdefault("data_insert_date", sikka_time(time.time()))
            access = p.pop("access", None)
            if access is not None and truthy(access):
                self.access.setdefault(p["office_id"], set()).add(str(p["practice_id"]))
            out.append(stringify(p))
        self.practices = out

    def new_id(self):
        self.next_id += 1
        return str(self.next_id)

    def office_data(self, office):
        return self.data.setdefault(office, {k: [] for k in self.DATA_KINDS})

    def seed(self, body):
        office = str(body.get("office_id") or "")
        if not office:
            raise ControlError("seed needs an office_id")
        d = self.office_data(office)
        append = truthy(body.get("append", False))
        idfield = {"patients": "patient_id", "appointments": "appointment_sr_no",
                   "providers": "provider_id", "operatories": "operatory"}
        for kind in self.DATA_KINDS:
            if kind not in body:
                continue
            if not isinstance(body[kind], list):
                raise ControlError(f"{kind} must be a list")
            items = []
            for it in body[kind]:
                if not isinstance(it, dict):
                    raise ControlError(f"{kind} items must be objects")
                it = dict(it)
                if kind in idfield and not it.get(idfield[kind]):
                    it[idfield[kind]] = self.new_id()
                it.setdefault("practice_id", "1")
                for f in ("date", "birthdate"):
                    if f in it:
                        it[f] = day_time(it[f])
                if kind == "appointments":
                    it.setdefault("status", "Scheduled")
                    it.setdefault("length", "30")
                if kind == "patients":
                    it.setdefault("status", "Active")
                items.append(stringify(it))
            d[kind] = (d[kind] + items) if append else items
        if "uploaded" in body:
            self.uploaded[office] = truthy(body["uploaded"])
        return {k: len(v) for k, v in d.items()}

    def offices(self):
        seen = {}
        for p in self.practices:
            seen.setdefault(p["office_id"], None)
        for e in list(self.request_keys.values()) + list(self.codes.values()):
            seen.setdefault(e["office_id"], None)
        return list(seen)

    # ---- keys -----------------------------------------------------------------------------

    def app_ok(self, app_id, app_key):
        return (app_id is not None and app_key is not None and
                secrets.compare_digest(str(app_id), self.app_id) and
                secrets.compare_digest(str(app_key), self.app_key))

    def check_app(self, app_id, app_key):
        if not self.app_ok(app_id, app_key):
            fail(401, "API2003", "Authentication/Authorization Failed",
                 "App id or app key is incorrect.")

    def issue(self, office, grant, count=True):
        now = time.time()
        key, rk = secrets.token_hex(16), secrets.token_hex(16)
        self.request_keys[key] = {"office_id": office, "issued": now,
                                  "expires": now + self.settings["key_lifetime"], "grant": grant,
                                  "request_count": 0, "revoked": False, "refresh_key": rk}
        self.refresh_keys[rk] = {"office_id": office, "valid": True, "request_key": key,
                                 "issued": now, "reason": ""}
        if count:
            self.counters["grants"][grant] += 1
        return key

    def key_body(self, key, base):
        e = self.request_keys[key]
        now = time.time()
        return {
            "href": f"{base}/v4/request_key_info?request_key={key}",
            "request_key": key, "start_time": sikka_time(e["issued"]),
            "end_time": sikka_time(e["expires"]),
            "expires_in": f"{max(0, round(e['expires'] - now))} second(s)",
            "issued_to": e["office_id"], "status": "active",
            "request_count": e["request_count"], "scope": "All", "domain": "Dental",
            "refresh_key": e["refresh_key"],
        }

    def mint_code(self, office):
        code = secrets.token_hex(16)
        self.codes[code] = {"office_id": office, "used": False,
                            "expires": time.time() + self.settings["code_lifetime"]}
        return code

    def grant(self, body, base):
        if not isinstance(body, dict):
            fail(400, "API1026", "Invalid parameter", "The request body must be a JSON object.")
        gt = body.get("grant_type")
        if not gt:
            fail(400, "API1020", "Parameter missing", "grant_type is required.")
        gt = str(gt)
        if gt not in ("authorization_code", "request_key", "refresh_key"):
            fail(400, "API1026", "Invalid parameter", f"grant_type '{gt}' is not supported.")
        self.check_app(body.get("app_id"), body.get("app_key"))
        if gt == "authorization_code":
            code = str(body.get("code") or "")
            if not code:
                fail(400, "API1020", "Parameter missing", "code is required.")
            c = self.codes.get(code)
            if c is None or c["used"] or c["expires"] <= time.time():
                why = "has already been used" if c and c["used"] else \
                      "has expired" if c else "is not valid"
                fail(401, "API2007", "Practice not authorized", f"The authorization code {why}.")
            c["used"] = True
            return self.key_body(self.issue(c["office_id"], gt), base)
        if gt == "request_key":
            office = str(body.get("office_id") or "")
            secret = str(body.get("secret_key") or "")
            if not office or not secret:
                fail(400, "API1020", "Parameter missing", "office_id and secret_key are required.")
            match = [p for p in self.practices if p["office_id"] == office and
                     secrets.compare_digest(p["secret_key"], secret)]
            if not match:
                fail(401, "API2007", "Practice not authorized",
                     "The office id or secret key is incorrect.")
            if not self.access.get(office):
                fail(401, "API2007", "Practice not authorized",
                     "API access for this practice location is not on.")
            if self.settings["reuse_active_key"]:
                now = time.time()
                live = [(e["issued"], k) for k, e in self.request_keys.items()
                        if e["office_id"] == office and not e["revoked"] and e["expires"] > now
                        and self.refresh_keys[e["refresh_key"]]["valid"]]
                if live:
                    key = max(live)[1]
                    self.request_keys[key]["request_count"] += 1
                    return self.key_body(key, base)
            return self.key_body(self.issue(office, gt), base)
        rk = str(body.get("refresh_key") or "")
        if not rk:
            fail(400, "API1020", "Parameter missing", "refresh_key is required.")
        e = self.refresh_keys.get(rk)
        if e is None or not e["valid"]:
            office = e["office_id"] if e else "unknown"
            bump(self.counters["invalid_refresh"], office)
            fail(401, "API2007", "Practice not authorized",
                 "The refresh key is not valid." if e is None else
                 f"The refresh key is no longer valid ({e['reason'] or 'replaced'}).")
        e["valid"], e["reason"] = False, "used"
        old = self.request_keys.get(e["request_key"])
        if old is not None and self.settings["refresh_revokes_old_key"]:
            old["revoked"] = True
        office = e["office_id"]
        bump(self.counters["refreshes"], office)
        return self.key_body(self.issue(office, gt), base)

    def check_request_key(self, key):
        if not key:
            fail(400, "API1004", "Request key missing", "The Request-Key header is required.")
        e = self.request_keys.get(key)
        if e is None or e["revoked"]:
            fail(401, "API2007", "Practice not authorized", "The request key is not valid.")
        if e["expires"] <= time.time():
            fail(400, "API1025", "Request key expired",
                 "The request key has expired; get a new one with the refresh key.")
        e["request_count"] += 1
        office = e["office_id"]
        if not self.uploaded.get(office, True):
            fail(500, "API2010", "Data not uploaded yet",
                 "The practice's data has not been uploaded yet.")
        return office

    # ---- --state FILE: what survives a restart ----------------------------------------------

    # Everything but the app credentials (the command line's or /__fake/app's), the latency,
    # the faults and the counters.
    PERSISTED = ("practices", "access", "authorize", "codes", "request_keys", "refresh_keys",
                 "data", "spu_online", "uploaded", "writeback_cfg", "writebacks",
                 "next_writeback", "next_id", "settings")

    def save(self, strict=False):
        """Write the persisted state to the --state file (0600, temp file + rename); called
        with the lock held after every request.  A failure is said on stderr (raised when
        STRICT: at start-up)."""
        if not self.state_file:
            return
        snap = {k: getattr(self, k) for k in self.PERSISTED}
        snap["access"] = {o: sorted(s) for o, s in self.access.items()}
        snap["settings"] = {k: v for k, v in self.settings.items() if k != "latency_ms"}
        tmp = f"{self.state_file}.tmp.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"version": 1, "state": snap}, f, separators=(",", ":"))
            os.replace(tmp, self.state_file)
        except OSError as e:
            if strict:
                raise
            sys.stderr.write(f"fake-sikka: cannot save the state to {self.state_file}: {e}\n")

    def load(self):
        """Read the --state file if it exists (a missing file: start-up state)."""
        try:
            with open(self.state_file) as f:
                doc = json.load(f)
        except FileNotFoundError:
            return
        snap = doc.get("state") if isinstance(doc, dict) and doc.get("version") == 1 else None
        if not isinstance(snap, dict) or set(self.PERSISTED) - set(snap):
            raise ValueError(f"{self.state_file} is not a state file of this fake")
        for k in self.PERSISTED:
            setattr(self, k, snap[k])
        self.access = {o: set(s) for o, s in snap["access"].items()}
        self.settings = dict(snap["settings"], latency_ms=self.initial[2])

    # ---- control-side views ---------------------------------------------------------------

    def state_view(self, only=None):
        now = time.time()
        offices = {}
        by_office = {}
        for k, e in self.request_keys.items():
            by_office.setdefault(e["office_id"], ([], [], []))[0].append(
                {"request_key": k, "grant": e["grant"], "start_time": sikka_time(e["issued"]),
                 "expires_in": round(e["expires"] - now), "expired": e["expires"] <= now,
                 "revoked": e["revoked"], "request_count": e["request_count"],
                 "refresh_key": e["refresh_key"]})
        for k, e in self.refresh_keys.items():
            by_office.setdefault(e["office_id"], ([], [], []))[1].append(
                {"refresh_key": k, "valid": e["valid"], "reason": e["reason"],
                 "request_key": e["request_key"]})
        for c, e in self.codes.items():
            by_office.setdefault(e["office_id"], ([], [], []))[2].append(
                {"code": c, "used": e["used"], "expired": e["expires"] <= now})
        for office in self.offices():
            if only is not None and office != only:
                continue
            keys, rks, codes = by_office.get(office, ([], [], []))
            offices[office] = {
                "access": "ON" if self.access.get(office) else "OFF",
                "access_practices": sorted(self.access.get(office, ())),
                "spu_online": self.spu_online.get(office, True),
                "uploaded": self.uploaded.get(office, True),
                "request_keys": keys,
                "valid_request_keys": [k["request_key"] for k in keys
                                       if not k["expired"] and not k["revoked"]],
                "refresh_keys": rks,
                "valid_refresh_keys": [r["refresh_key"] for r in rks if r["valid"]],
                "codes": codes,
                "data": {k: len(v) for k, v in self.data.get(office, {}).items()},
            }
        return {"app_id": self.app_id, "settings": self.settings, "practices": self.practices,
                "authorize": self.authorize, "writeback": self.writeback_cfg,
                "offices": offices, "writebacks": list(self.writebacks.values()),
                "faults": self.faults}

    def fault_matches(self, f, method, path, body):
        if f["grant_type"] is not None:
            gt = body.get("grant_type") if isinstance(body, dict) else None
            if gt != f["grant_type"]:
                return False
        return super().fault_matches(f, method, path)


def fault_error(status, headers):
    code, short, long = FAULT_DEFAULTS.get(status, ("API2001", "Error", "An error occurred."))
    r = error(status, code, short, long)
    r.headers.update(headers)
    return r


def fault_reply(f):
    headers = fakelib.fault_headers(f)
    if f["status"] == 429:
        headers.setdefault("X-Rate-Limit-Limit", "1000")
        headers.setdefault("X-Rate-Limit-Remaining", "0")
        headers.setdefault("X-Rate-Limit-Reset",
                           str(fakelib.retry_after_seconds(f["retry_after"]) or 60))
    return fakelib.fault_answer(f, headers, fault_error)


# ---- the Sikka API ----------------------------------------------------------------------------

def page(state, items, query, base, path):
    """The list envelope: offset is a page index, limit defaults to 50 and stops at 5000."""
    t0 = time.monotonic()
    try:
        offset = int(query.get("offset", "0") or "0")
        limit = int(query.get("limit", "50") or "50")
    except ValueError:
        fail(400, "API1026", "Invalid parameter", "offset and limit must be numbers.")
    if offset < 0 or limit < 1:
        fail(400, "API1026", "Invalid parameter", "offset must be >= 0 and limit >= 1.")
    limit = min(limit, 5000)
    total = len(items)
    last = max(0, (total + limit - 1) // limit - 1)

    def link(o):
        q = dict(query)
        q["offset"], q["limit"] = str(o), str(limit)
        return f"{base}{path}?{urlencode(q)}"

    if total == 0 and state.settings["empty_as_204"]:
        return Reply(204, b"")
    env = {"offset": offset, "limit": limit, "total_count": total,
           "execution_time": int((time.monotonic() - t0) * 1000) + 1,
           "pagination": {"first": link(0), "previous": link(offset - 1) if offset > 0 else "",
                          "current": link(offset), "next": link(offset + 1) if offset < last else "",
                          "last": link(last)},
           "items": items[offset * limit:(offset + 1) * limit]}
    return sikka_reply(200, [env] if state.settings["wrap_lists"] else env)


def ci(a, b):
    return str(a or "").strip().lower() == str(b or "").strip().lower()


def date_range(query, required=False):
    start, end = query.get("startdate"), query.get("enddate")
    if required and not start:
        fail(400, "API1020", "Parameter missing", "startdate is required.")
    for name, v in (("startdate", start), ("enddate", end)):
        if v and not valid_date(v):
            fail(400, "API1026", "Invalid parameter", f"{name} must be yyyy-mm-dd.")
    return start, end


def in_range(item, start, end):
    d = str(item.get("date", ""))[:10]
    return (not start or d >= start) and (not end or d <= end)


def eq_filters(items, query, names):
    for n in names:
        if query.get(n):
            items = [i for i in items if str(i.get(n, "")) == query[n]]
    return items


def filter_patients(items, q):
    if q.get("firstname"):
        items = [p for p in items if ci(p.get("firstname"), q["firstname"])]
    if q.get("lastname"):
        items = [p for p in items if ci(p.get("lastname"), q["lastname"])]
    if q.get("email"):
        items = [p for p in items if ci(p.get("email"), q["email"])]
    if q.get("cell"):
        items = [p for p in items if digits(q["cell"]) and digits(p.get("cell")) == digits(q["cell"])]
    if q.get("phone"):
        want = digits(q["phone"])
        items = [p for p in items if want and want in
                 [digits(p.get(f)) for f in ("homephone", "workphone", "cell", "phone")]]
    if q.get("search"):
        s = q["search"].strip().lower()
        sd = digits(s) if re.fullmatch(r"[\d\s()+.-]+", s) else ""

        def hit(p):
            names = [p.get("firstname", ""), p.get("lastname", ""), p.get("email", ""),
                     p.get("patient_id", ""),
                     f"{p.get('firstname', '')} {p.get('lastname', '')}"]
            if any(s in str(x).lower() for x in names):
                return True
            return bool(sd) and any(sd in digits(p.get(f))
                                    for f in ("homephone", "workphone", "cell", "phone"))
        items = [p for p in items if hit(p)]
    return eq_filters(items, q, ("patient_id", "practice_id", "provider_id"))


def practice_for(state, office, practice_id):
    ps = [p for p in state.practices if p["office_id"] == office]
    if practice_id:
        ps = [p for p in ps if p["practice_id"] == practice_id]
    return ps[0] if ps else None


def overlaps(a, b):
    sa, sb = minutes(a.get("time")), minutes(b.get("time"))
    if sa is None or sb is None:
        return False
    la, lb = int(digits(a.get("length")) or 0), int(digits(b.get("length")) or 0)
    return sa < sb + lb and sb < sa + la


def complete_writeback(state, wb):
    office, body = wb["office_id"], wb["body"]
    d = state.office_data(office)
    wb["is_completed"] = True
    wb["completed_time"] = sikka_time(time.time())
    if wb["fail"]:
        wb["has_error"], wb["result"] = True, wb["fail_result"] or \
            "Writeback failed: the practice management system rejected the appointment."
        return
    if (wb["api_name"], wb["method"]) != ("appointment", "POST"):
        return complete_other_writeback(state, wb)
    if not any(p.get("patient_id") == body["patient_id"] for p in d["patients"]):
        wb["has_error"], wb["result"] = True, f"Patient {body['patient_id']} not found."
        return
    if d["providers"] and not any(p.get("provider_id") == body["provider_id"]
                                  for p in d["providers"]):
        wb["has_error"], wb["result"] = True, f"Provider {body['provider_id']} not found."
        return
    new = {"date": day_time(body["date"]), "time": body["time"], "length": body["length"]}
    if wb["reject_overlap"]:
        for a in d["appointments"]:
            if a.get("date", "")[:10] != body["date"] or \
               str(a.get("status", "")).lower() in ("cancelled", "canceled", "broken", "deleted"):
                continue
            same = a.get("provider_id") == body["provider_id"] or \
                (body.get("operatory") and a.get("operatory") == body.get("operatory"))
            if same and overlaps(a, new):
                wb["has_error"] = True
                wb["result"] = f"Slot not available: overlaps appointment {a.get('appointment_sr_no')}."
                return
    appt = stringify({
        "appointment_sr_no": state.new_id(), "patient_id": body["patient_id"],
        "provider_id": body["provider_id"], "date": day_time(body["date"]), "time": body["time"],
        "length": body["length"], "operatory": body.get("operatory", ""),
        "description": body.get("description", ""), "practice_id": body["practice_id"],
        "status": "Scheduled", "appointment_made_date": sikka_time(time.time()),
    })
    d["appointments"].append(appt)
    wb["has_error"], wb["result"], wb["created_id"] = False, "Success", appt["appointment_sr_no"]


# ---- the other writebacks: reschedule, cancel, new patient (issue 13) ----------------------
# PUT /v4/appointments/{appointment_sr_no} (the booking's fields) and PATCH with
# {"op":"replace","path":"/appointment_status","value":"broken","practice_id"} answer 200
# API0007; POST /v4/patient answers 201 API2016.  All three are queued as writebacks that
# /v4/writeback_status polls like a booking, under the same /__fake/writeback settings.

APPT_ID_PATH = re.compile(r"/v4/appointments/([^/]+)")
PATIENT_FIELDS = ("firstname", "lastname", "cell", "email", "birthdate", "practice_id")
CLOSED = ("cancelled", "canceled", "broken", "deleted")


def flat_body(body):
    """A JSON object's scalar fields as Sikka reads them: strings."""
    if not isinstance(body, dict):
        fail(400, "API1026", "Invalid parameter", "The request body must be a JSON object.")
    return {k: str(v) if not isinstance(v, bool) else stringify(v) for k, v in body.items()
            if v is not None and not isinstance(v, (dict, list))}


def checked_practice(state, office, b):
    if not b.get("practice_id"):
        fail(400, "API1020", "Parameter missing", "practice_id required.")
    if not practice_for(state, office, b["practice_id"]):
        fail(400, "API1026", "Invalid parameter", f"practice_id {b['practice_id']} is not valid.")
    if truthy(b.get("check_spu", "false")) and not state.spu_online.get(office, True):
        fail(412, "API2017", "SPU offline",
             "The practice's SPU is offline; the writeback cannot be delivered now.")


def queue_writeback(state, office, api_name, method, body, target=""):
    cfg = state.writeback_cfg
    wid = str(state.next_writeback)
    state.next_writeback += 1
    state.counters["writebacks"] += 1
    state.writebacks[wid] = {
        "id": wid, "office_id": office, "api_name": api_name, "method": method,
        "request_time": sikka_time(time.time()), "completed_time": "", "is_completed": False,
        "has_error": False, "result": "", "created_id": "", "polls": 0, "body": body,
        "target": target, "pending": int(cfg["pending_polls"]), "fail": bool(cfg["fail"]),
        "fail_result": cfg["result"], "reject_overlap": bool(cfg["reject_overlap"]),
    }
    return wid


def accepted(status, code, wid, base):
    return sikka_reply(status, {
        "http_code": status, "http_code_desc": STATUS_DESC[status], "error_code": code,
        "short_message": "Writeback request accepted", "long_message": f"Id:{wid}",
        "more_information": f"Poll {base}/v4/writeback_status?id={wid}"})


def find_appointment(state, office, sr_no, practice_id):
    for a in state.office_data(office)["appointments"]:
        if a.get("appointment_sr_no") == sr_no and a.get("practice_id", "1") == practice_id:
            return a
    fail(404, "API2009", "Not found", f"Appointment {sr_no} was not found.")


def writeback_routes(state, method, path, query, headers, body, base):
    """The reschedule, cancel and new-patient writebacks; None for any other path."""
    m = APPT_ID_PATH.fullmatch(path)
    if not m and path != "/v4/patient":
        return None
    if method not in (("POST",) if path == "/v4/patient" else ("PUT", "PATCH")):
        fail(405, "API1026", "Method not allowed", f"{method} is not allowed on {path}.")
    office = state.check_request_key(headers.get("Request-Key"))
    b = flat_body(body)
    if path == "/v4/patient":
        missing = [k for k in ("firstname", "lastname", "practice_id") if not b.get(k)]
        if missing:
            fail(400, "API1020", "Parameter missing", ", ".join(missing) + " required.")
        if b.get("birthdate") and not valid_date(b["birthdate"]):
            fail(400, "API1026", "Invalid parameter", "birthdate must be yyyy-mm-dd.")
        checked_practice(state, office, b)
        return accepted(201, "API2016", queue_writeback(state, office, "patient", "POST", b), base)
    sr_no = m.group(1)
    if method == "PATCH":
        if not body.get("op") or not body.get("path") or "value" not in body:
            fail(400, "API1020", "Parameter missing", "op, path and value required.")
        if b.get("op") != "replace" or b.get("path") != "/appointment_status":
            fail(400, "API1026", "Invalid parameter",
                 "Only op replace of /appointment_status is supported.")
        if str(b.get("value", "")).lower() != "broken":
            fail(400, "API1026", "Invalid parameter", "appointment_status can only be set to broken.")
        checked_practice(state, office, b)
        find_appointment(state, office, sr_no, b["practice_id"])
        wid = queue_writeback(state, office, "appointments", "PATCH", b, sr_no)
        return accepted(200, "API0007", wid, base)
    missing = [k for k in ("patient_id", "date", "time", "provider_id", "length", "practice_id")
               if not b.get(k)]
    if missing:
        fail(400, "API1020", "Parameter missing", ", ".join(missing) + " required.")
    if not valid_date(b["date"]):
        fail(400, "API1026", "Invalid parameter", "date must be yyyy-mm-dd.")
    if minutes(b["time"]) is None or not re.fullmatch(r"\d{2}:\d{2}", b["time"]):
        fail(400, "API1026", "Invalid parameter", "time must be HH:mm.")
    if not re.fullmatch(r"\d+", b["length"]) or int(b["length"]) == 0:
        fail(400, "API1026", "Invalid parameter", "length must be a number of minutes.")
    checked_practice(state, office, b)
    a = find_appointment(state, office, sr_no, b["practice_id"])
    if a.get("patient_id") != b["patient_id"]:
        fail(400, "API1026", "Invalid parameter",
             f"patient_id {b['patient_id']} is not the patient of appointment {sr_no}.")
    wid = queue_writeback(state, office, "appointments", "PUT", b, sr_no)
    return accepted(200, "API0007", wid, base)


def complete_other_writeback(state, wb):
    """Completes a reschedule, cancel or new patient (complete_writeback has done the common
    part: is_completed, completed_time, the configured failure)."""
    d = state.office_data(wb["office_id"])
    body = wb["body"]
    if wb["api_name"] == "patient":
        p = {k: body.get(k, "") for k in PATIENT_FIELDS}
        p.update({"patient_id": state.new_id(), "status": "Active",
                  "birthdate": day_time(p["birthdate"]) if p["birthdate"] else ""})
        d["patients"].append(stringify(p))
        wb["has_error"], wb["result"], wb["created_id"] = False, "Success", p["patient_id"]
        return
    a = next((x for x in d["appointments"] if x.get("appointment_sr_no") == wb["target"]), None)
    if a is None:
        wb["has_error"], wb["result"] = True, f"Appointment {wb['target']} not found."
        return
    if str(a.get("status", "")).lower() in CLOSED:
        wb["has_error"] = True
        wb["result"] = f"Appointment {wb['target']} is {a['status'].lower()}."
        return
    if wb["method"] == "PATCH":
        a["status"] = "Broken"
        wb["has_error"], wb["result"] = False, "Success"
        return
    if d["providers"] and not any(p.get("provider_id") == body["provider_id"]
                                  for p in d["providers"]):
        wb["has_error"], wb["result"] = True, f"Provider {body['provider_id']} not found."
        return
    new = {"date": day_time(body["date"]), "time": body["time"], "length": body["length"]}
    if wb["reject_overlap"]:
        for o in d["appointments"]:
            if o is a or o.get("date", "")[:10] != body["date"] or \
               str(o.get("status", "")).lower() in CLOSED:
                continue
            same = o.get("provider_id") == body["provider_id"] or \
                (body.get("operatory") and o.get("operatory") == body.get("operatory"))
            if same and overlaps(o, new):
                wb["has_error"] = True
                wb["result"] = f"Slot not available: overlaps appointment {o.get('appointment_sr_no')}."
                return
    a.update(stringify({"date": new["date"], "time": body["time"], "length": body["length"],
                        "provider_id": body["provider_id"]}))
    for k in ("operatory", "description"):
        if k in body:
            a[k] = body[k]
    wb["has_error"], wb["result"] = False, "Success"


def writeback_item(wb):
    return {k: wb[k] for k in ("id", "api_name", "method", "request_time", "completed_time",
                               "is_completed", "has_error", "result", "created_id")}


def api(state, method, path, query, headers, body, base):
    """Route one Sikka request; called with the state lock held."""
    answer = life_api(state, method, path, query, headers, body, base)
    if answer is not None:
        return answer
    if path == "/v4/request_key" and method == "POST":
        return sikka_reply(200, state.grant(body, base))
    if path == "/v4/practice_location" and method == "POST":
        state.check_app(headers.get("App-Id"), headers.get("App-Key"))
        if not isinstance(body, dict):
            fail(400, "API1026", "Invalid parameter", "The request body must be a JSON object.")
        office, pid, access = (str(body.get(k) or "") for k in ("office_id", "practice_id", "access"))
        if not office or not pid or not access:
            fail(400, "API1020", "Parameter missing", "office_id, practice_id and access are required.")
        if access.upper() not in ("ON", "OFF"):
            fail(400, "API1026", "Invalid parameter", "access must be ON or OFF.")
        if not practice_for(state, office, pid):
            fail(401, "API2007", "Practice not authorized",
                 f"Office {office} practice {pid} has not authorized this application.")
        s = state.access.setdefault(office, set())
        (s.add if access.upper() == "ON" else s.discard)(pid)
        return sikka_reply(200, {"http_code": 200, "http_code_desc": "OK", "error_code": "API4006",
                                 "short_message": "Practice location access updated",
                                 "long_message": f"Access {access.upper()} for office {office} practice {pid}.",
                                 "more_information": ""})

    mine = writeback_routes(state, method, path, query, headers, body, base)
    if mine is not None:
        return mine
    data_paths = ("/v4/patients", "/v4/appointments", "/v4/providers", "/v4/operatories",
                  "/v4/practices", "/v4/appointments_available_slots", "/v4/appointment",
                  "/v4/writeback_status")
    if path not in data_paths:
        fail(404, "API2009", "Not found", f"No such resource: {path}")
    want = "POST" if path == "/v4/appointment" else "GET"
    if method != want:
        fail(405, "API1026", "Method not allowed", f"{method} is not allowed on {path}.")
    office = state.check_request_key(headers.get("Request-Key"))
    d = state.office_data(office)
    if path == "/v4/patients":
        return page(state, filter_patients(d["patients"], query), query, base, path)
    if path == "/v4/appointments":
        start, end = date_range(query)
        items = [a for a in d["appointments"] if in_range(a, start, end)]
        items = eq_filters(items, query, ("provider_id", "patient_id", "practice_id",
                                          "appointment_sr_no", "operatory"))
        items.sort(key=lambda a: (a.get("date", ""), minutes(a.get("time")) or 0))
        return page(state, items, query, base, path)
    if path == "/v4/providers":
        return page(state, eq_filters(d["providers"], query, ("provider_id", "practice_id")),
                    query, base, path)
    if path == "/v4/operatories":
        return page(state, eq_filters(d["operatories"], query, ("operatory", "practice_id")),
                    query, base, path)
    if path == "/v4/practices":
        items = [{k: v for k, v in p.items() if k != "secret_key"}
                 for p in state.practices if p["office_id"] == office]
        return page(state, eq_filters(items, query, ("practice_id",)), query, base, path)
    if path == "/v4/appointments_available_slots":
        p = practice_for(state, office, query.get("practice_id"))
        pms = (p or {}).get("practice_management_system", "")
        if pms.strip().lower() not in SLOT_PMS:
            fail(400, "API1026", "Not supported",
                 f"Available slots are supported only for Orthotrac, Dolphin and Planet DDS, "
                 f"not for {pms or 'this practice'}.")
        start, end = date_range(query, required=True)
        items = [s for s in d["slots"] if in_range(s, start, end or start)]
        items = eq_filters(items, query, ("provider_id", "practice_id", "operatory"))
        return page(state, items, query, base, path)
    if path == "/v4/writeback_status":
        wid = query.get("id", "")
        if not wid:
            fail(400, "API1020", "Parameter missing", "id is required.")
        wb = state.writebacks.get(wid)
        if wb is None or wb["office_id"] != office:
            fail(400, "API1026", "Invalid parameter", f"No writeback with id {wid}.")
        wb["polls"] += 1
        if not wb["is_completed"] and state.spu_online.get(office, True) and wb["pending"] >= 0:
            if wb["pending"] == 0:
                complete_writeback(state, wb)
            else:
                wb["pending"] -= 1
        return page(state, [stringify(writeback_item(wb))], query, base, path)
    # POST /v4/appointment
    if not isinstance(body, dict):
        fail(400, "API1026", "Invalid parameter", "The request body must be a JSON object.")
    b = {k: str(v) if not isinstance(v, bool) else stringify(v) for k, v in body.items()
         if v is not None and not isinstance(v, (dict, list))}
    missing = [k for k in ("patient_id", "date", "time", "provider_id", "length", "practice_id")
               if not b.get(k)]
    if missing:
        fail(400, "API1020", "Parameter missing", ", ".join(missing) + " required.")
    if not valid_date(b["date"]):
        fail(400, "API1026", "Invalid parameter", "date must be yyyy-mm-dd.")
    if minutes(b["time"]) is None or not re.fullmatch(r"\d{2}:\d{2}", b["time"]):
        fail(400, "API1026", "Invalid parameter", "time must be HH:mm.")
    if not re.fullmatch(r"\d+", b["length"]) or int(b["length"]) == 0:
        fail(400, "API1026", "Invalid parameter", "length must be a number of minutes.")
    if not practice_for(state, office, b["practice_id"]):
        fail(400, "API1026", "Invalid parameter", f"practice_id {b['practice_id']} is not valid.")
    online = state.spu_online.get(office, True)
    if truthy(b.get("check_spu", "false")) and not online:
        fail(412, "API2017", "SPU offline",
             "The practice's SPU is offline; the writeback cannot be delivered now.")
    cfg = state.writeback_cfg
    wid = str(state.next_writeback)
    state.next_writeback += 1
    state.counters["writebacks"] += 1
    state.writebacks[wid] = {
        "id": wid, "office_id": office, "api_name": "appointment", "method": "POST",
        "request_time": sikka_time(time.time()), "completed_time": "", "is_completed": False,
        "has_error": False, "result": "", "created_id": "", "polls": 0, "body": b,
        "pending": int(cfg["pending_polls"]), "fail": bool(cfg["fail"]),
        "fail_result": cfg["result"], "reject_overlap": bool(cfg["reject_overlap"]),
    }
    return sikka_reply(201, {"http_code": 201, "http_code_desc": "Created", "error_code": "API2016",
                             "short_message": "Writeback request accepted",
                             "long_message": f"Id:{wid}",
                             "more_information": f"Poll {base}/v4/writeback_status?id={wid}"})


def authorize_page(state, query):
    def page_400(msg):
        return Reply(400, f"<!DOCTYPE html><html><body><h1>Bad request</h1><p>{msg}</p></body></html>",
                     content_type="text/html; charset=utf-8")
    if query.get("app_id") != state.app_id:
        return page_400("Invalid application.")
    redirect = query.get("redirect_uri", "")
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return page_400("Invalid redirect_uri.")
    a = state.authorize
    params = []
    if a["deny"]:
        params.append(("error", a["error"] or "access_denied"))
    else:
        office = a["office_id"] or (state.practices[0]["office_id"] if state.practices else "D00000")
        params.append(("code", state.mint_code(office)))
    if "state" in query:
        params.append(("state", query["state"]))
    if not a["deny"] and a["include_office_id"]:
        params.append(("office_id", a["redirect_office_id"] or office))
    q = (parts.query + "&" if parts.query else "") + urlencode(params, quote_via=quote)
    loc = urlunsplit((parts.scheme, parts.netloc, parts.path, q, ""))
    return Reply(302, f'<html><body><a href="{loc}">Continue</a></body></html>',
                 {"Location": loc}, content_type="text/html; charset=utf-8")


# ---- the control API --------------------------------------------------------------------------

def own_control(state, method, name, query, body, b, base):
    """The control endpoints of this fake (fakelib.control has the common ones)."""
    answer = life_control(state, method, name, query, b)
    if answer is not None:
        return answer
    if method == "GET":
        if name == "state":
            return 200, state.state_view(query.get("office_id"))
        return None
    if name == "app":
        if "app_id" in b:
            state.app_id = str(b["app_id"])
        if "app_key" in b:
            state.app_key = str(b["app_key"])
        return 200, {"app_id": state.app_id}
    if name == "practices":
        state.set_practices(body if isinstance(body, list) else b.get("practices"))
        return 200, {"practices": state.practices}
    if name == "access":
        office = str(b.get("office_id") or "")
        if not office:
            raise ControlError("access needs an office_id")
        pids = [str(b["practice_id"])] if b.get("practice_id") else \
            [p["practice_id"] for p in state.practices if p["office_id"] == office] or ["1"]
        s = state.access.setdefault(office, set())
        for pid in pids:
            (s.add if truthy(b.get("access", "ON")) else s.discard)(pid)
        return 200, {"office_id": office, "access": "ON" if s else "OFF"}
    if name == "authorize":
        for k in ("office_id", "redirect_office_id", "error"):
            if k in b:
                state.authorize[k] = None if b[k] is None else str(b[k])
        for k in ("include_office_id", "deny"):
            if k in b:
                state.authorize[k] = truthy(b[k])
        return 200, state.authorize
    if name == "code":
        office = str(b.get("office_id") or "")
        if not office:
            raise ControlError("code needs an office_id")
        return 200, {"code": state.mint_code(office), "office_id": office}
    if name == "issue":
        office = str(b.get("office_id") or "")
        if not office:
            raise ControlError("issue needs an office_id")
        key = state.issue(office, "request_key", count=False)
        return 200, state.key_body(key, base)
    if name == "seed":
        return 200, state.seed(b)
    if name == "keys":
        if "lifetime" in b:
            state.settings["key_lifetime"] = int(b["lifetime"])
        for k in ("reuse_active_key", "refresh_revokes_old_key"):
            if k in b:
                state.settings[k] = truthy(b[k])
        if "code_lifetime" in b:
            state.settings["code_lifetime"] = int(b["code_lifetime"])
        return 200, state.settings
    if name in ("expire", "revoke"):
        office = b.get("office_id")
        n = 0
        if name == "expire":
            now = time.time()
            for e in state.request_keys.values():
                if (office is None or e["office_id"] == office) and e["expires"] > now:
                    e["expires"], n = now - 1, n + 1
            return 200, {"expired": n}
        which = str(b.get("keys") or "refresh")
        if which not in ("refresh", "request", "all"):
            raise ControlError("keys is refresh, request or all")
        if which in ("refresh", "all"):
            for e in state.refresh_keys.values():
                if (office is None or e["office_id"] == office) and e["valid"]:
                    e["valid"], e["reason"], n = False, "revoked", n + 1
        if which in ("request", "all"):
            for e in state.request_keys.values():
                if (office is None or e["office_id"] == office) and not e["revoked"]:
                    e["revoked"], n = True, n + 1
        return 200, {"revoked": n}
    if name == "spu":
        office = str(b.get("office_id") or "")
        if not office:
            raise ControlError("spu needs an office_id")
        state.spu_online[office] = truthy(b.get("online", True))
        return 200, {"office_id": office, "online": state.spu_online[office]}
    if name == "writeback":
        for k in ("pending_polls",):
            if k in b:
                state.writeback_cfg[k] = int(b[k])
        for k in ("fail", "reject_overlap"):
            if k in b:
                state.writeback_cfg[k] = truthy(b[k])
        if "result" in b:
            state.writeback_cfg["result"] = str(b["result"] or "")
        return 200, state.writeback_cfg
    if name == "options":
        for k in ("wrap_lists", "empty_as_204"):
            if k in b:
                state.settings[k] = truthy(b[k])
        return 200, state.settings
    return None


# ---- a practice's whole life: the marketplace handshake, every location, revocation ----------
# (issue 14) Sikka's GET /v4/authorized_practices lists only practice id 1 of each office unless
# show=all is given; DELETE /v4/refresh_key revokes a refresh key (it no longer refreshes); and
# /__fake/registration produces the PascalCase body that Sikka's marketplace POSTs to a partner
# when a practice buys the app (kind=purchase) or leaves (kind=cancel).

def life_customer_id(office_id):
    """The marketplace's MasterCustomerID of an office: its items' customer_id."""
    return f"MC-{office_id}"


def life_api(state, method, path, query, headers, body, base):
    if path == "/v4/authorized_practices" and method == "GET":
        state.check_app(headers.get("App-Id"), headers.get("App-Key"))
        items = list(state.practices)
        if str(query.get("show", "")).lower() != "all":
            items = [p for p in items if p.get("practice_id") == "1"]
        return page(state, items, query, base, path)
    if path == "/v4/refresh_key" and method == "DELETE":
        state.check_app(headers.get("App-Id"), headers.get("App-Key"))
        if not isinstance(body, dict):
            fail(400, "API1026", "Invalid parameter", "The request body must be a JSON object.")
        rk = str(body.get("refresh_key") or "")
        if not rk:
            fail(400, "API1020", "Parameter missing", "refresh_key is required.")
        e = state.refresh_keys.get(rk)
        if e is None or not e["valid"]:
            fail(401, "API2007", "Practice not authorized", "The refresh key is not valid.")
        e["valid"], e["reason"] = False, "revoked"
        bump(state.counters.setdefault("revoked_refresh", {}), e["office_id"])
        return sikka_reply(200, {"http_code": 200, "http_code_desc": "OK", "error_code": "",
                                 "short_message": "Refresh key revoked",
                                 "long_message": "The refresh key was revoked.",
                                 "more_information": ""})
    return None


def life_registration(state, q):
    """A registration (or cancellation) body as Sikka's marketplace sends it."""
    office = str(q.get("office_id") or "")
    listed = [p for p in state.practices if p["office_id"] == office]
    customer = str(q.get("customer_id") or (listed[0].get("customer_id") if listed else "") or
                   (life_customer_id(office) if office else ""))
    if not customer:
        raise ControlError("registration needs an office_id or a customer_id")
    state.life_next_reg = getattr(state, "life_next_reg", 5000) + 1
    n = state.life_next_reg
    name = q.get("practice_name") or (listed[0]["practice_name"] if listed else "New Practice")
    body = {
        "MasterCustomerID": customer,
        "EmailAddress": q.get("email", "frontdesk@example.com"),
        "PracticeName": name,
        "Address1": q.get("address", "12 Enamel Road"), "City": q.get("city", "Springfield"),
        "State": q.get("state", "IL"), "Zip": q.get("zip", "62704"),
        "Phone": q.get("phone", "(217) 555-0199"),
        "FirstName": q.get("first_name", "Dana"), "LastName": q.get("last_name", "Molar"),
        "Order#": q.get("order", f"ORD-{n}"),
        "PartnerRegistrationID": q.get("registration_id", f"PR-{n}"),
        "PurchaseDate": q.get("purchase_date", sikka_time(time.time())),
        "Source": "Sikka",
    }
    if str(q.get("kind", "purchase")) == "cancel":
        body["CancelDate"] = sikka_time(time.time())
    return stringify(body)


def life_control(state, method, name, query, b):
    if name == "registration":
        return 200, life_registration(state, dict(query, **b))
    return None


# ---- HTTP -------------------------------------------------------------------------------------

class Handler(fakelib.Handler):
    server_version = "FakeSikka/1.0"
    log_name = "fake-sikka"
    max_body = MAX_BODY
    fault_reply = staticmethod(fault_reply)

    def dispatch(self):
        state = self.server.state
        parts = urlsplit(self.path)
        path = parts.path
        query = {}
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            query.setdefault(k.lower() if not path.startswith("/portal/") else k, v)
        try:
            raw = self.read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self.send(error(413, "API1026", "Request too large", "The request body is too large."))
            return
        base = "http://" + (self.headers.get("Host") or "%s:%d" % self.server.server_address[:2])

        if path.startswith("/__fake/"):
            answer = fakelib.control_answer(state, self.command, path, query, raw, own_control,
                                            base, bad_json="the body is not JSON")
            with state.lock:
                state.save()
            self.send(json_reply(*answer))
            return

        body = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                body = ValueError  # a marker: present but not JSON
        with state.lock:
            bump(state.counters["requests"], f"{self.command} {path}")
            fault = state.take_fault(self.command, path, body if isinstance(body, dict) else None)
            latency = state.latency_ms
        fakelib.pause(latency, fault)
        if fakelib.cuts(fault, "before"):
            self.apply_fault(fault)
            return
        try:
            with state.lock:
                try:
                    if path.startswith("/portal/") and path.lower() == "/portal/authapp.aspx" \
                            and self.command == "GET":
                        reply = authorize_page(state, query)
                    else:
                        if body is ValueError:
                            fail(400, "API1026", "Invalid parameter",
                                 "The request body is not valid JSON.")
                        reply = api(state, self.command, path, query, self.headers, body, base)
                finally:
                    state.save()
        except SikkaError as e:
            reply = e.reply
        except Exception:  # a bug in the fake: answer like Sikka would, and say so on stderr
            traceback.print_exc(file=sys.stderr)
            reply = error(500, "API2001", "Internal server error", "An internal error occurred.")
        self.send_after(fault, reply)

    def send(self, reply):
        """Through http.server: its Server and Date headers, then the body in a second write."""
        try:
            self.send_response(reply.status, STATUS_DESC.get(reply.status))
            if reply.status != 204 and not (reply.status == 302 and not reply.body):
                self.send_header("Content-Type", reply.content_type)
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if reply.status != 204:
                self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and reply.status != 204:
                self.wfile.write(reply.body[:len(reply.body) // 2] if reply.truncate else reply.body)
            if reply.truncate:
                self.close_connection = True
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def main(argv=None):
    ap = fakelib.arg_parser("A fake Sikka ONE API v4 for tests.")
    ap.add_argument("--app-id", default=DEFAULT_APP_ID)
    ap.add_argument("--app-key", default=DEFAULT_APP_KEY)
    fakelib.latency_option(ap, "added to every Sikka request")
    ap.add_argument("--state", metavar="FILE",
                    help="load the state from FILE at start (if it exists) and save it there "
                         "after every request, so that a restart forgets nothing")
    args = ap.parse_args(argv)
    state_file = os.path.abspath(args.state) if args.state else None

    def make_state(initial):
        state = State(initial)
        if state_file:
            state.load()
            state.save(strict=True)  # a file that cannot be written fails now, not later
        return state

    try:
        return fakelib.serve(args, Handler, make_state,
                             (args.app_id, args.app_key, args.latency_ms, state_file))
    except (OSError, ValueError) as e:
        sys.stderr.write(f"fake-sikka: {e}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
