#!/usr/bin/python3
"""plain_service.py: a busgate service written from docs/protocol.md section 14 alone.

It uses nothing but redis-py (Debian's python3-redis) and plain Valkey commands: no
busgate SDK. The suite (tests/test_plain_service.c) drives it through registration,
requests, HEAD, CANCEL and GOODBYE, so the protocol document stays true.

Endpoints of service "plain":
  GET  /plain/hello/{name}   200 JSON: method, name, request id, X-Gateway-Request-Id
  POST /plain/echo           200, the request body back
  GET  /plain/slow?ms=N      waits up to N ms in small steps; a CANCEL stops it (no RESPONSE)

Every protocol event is printed as one line ("event key=value ...") for the test to read.
"""

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import urllib.parse

import redis

GROUP = "router-gateway"
CONTROL = "router:control"
BROADCAST = "router:broadcast"
MAX_DELIVERIES = 5
LEASE_MS = 300000

ENDPOINTS = [
    {"method": "GET", "path": "/plain/hello/{name}"},
    {"method": "POST", "path": "/plain/echo"},
    {"method": "GET", "path": "/plain/slow", "timeout_ms": 10000},
]

print_lock = threading.Lock()


def event(name, **kv):
    """One line per protocol event, flushed at once (the test waits for them)."""
    words = " ".join("%s=%s" % (k, v) for k, v in kv.items())
    with print_lock:
        print(("%s %s" % (name, words)).strip(), flush=True)


def now_ms():
    return int(time.time() * 1000)


def frame_id():
    return "%016x" % random.getrandbits(64)


def text(v):
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


class Service:
    def __init__(self, opts):
        self.o = opts
        self.requests = "router:requests:{%s}" % opts.service
        self.cancels = "router:cancel:{%s}" % opts.service
        self.mine = "router:instance:{%s}:%s" % (opts.service, opts.instance)
        self.stop = threading.Event()
        self.held = {}  # request id -> threading.Event (set = cancelled)
        self.held_lock = threading.Lock()
        self.handlers = []
        # Section 14, setup step 1: one connection per blocking reader, one for writes.
        self.wr = self.connect()
        self.req_conn = self.connect()
        self.ctl_conn = self.connect()

    def connect(self):
        return redis.Redis(host=self.o.host, port=self.o.port, socket_timeout=30)

    def base(self, ftype):
        return {"v": 1, "type": ftype, "id": frame_id(), "ts": now_ms()}

    def identity(self):
        return {"service": self.o.service, "instance": self.o.instance, "version": "1.0.0"}

    def send_control(self, ftype, **extra):
        fields = self.base(ftype)
        fields.update(self.identity() if ftype != "GOODBYE" else
                      {"service": self.o.service, "instance": self.o.instance})
        fields.update(extra)
        self.wr.xadd(CONTROL, fields, maxlen=100000, approximate=True)

    def create_group(self):
        try:
            self.wr.xgroup_create(self.requests, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def last_id(self, key):
        newest = self.wr.xrevrange(key, "+", "-", count=1)
        return text(newest[0][0]) if newest else "0-0"

    # -- registration ------------------------------------------------------------------

    def send_endpoints(self, resync_id):
        meta = json.dumps({"endpoints": ENDPOINTS, "openapi": {"info": {"title": "plain"}}})
        self.send_control("ENDPOINTS_UPDATE", resync_id=resync_id, meta=meta)
        event("endpoints", resync_id=resync_id)

    def heartbeat_loop(self):
        while not self.stop.wait(self.o.interval_ms / 1000.0):
            self.send_control("HEARTBEAT", interval_ms=self.o.interval_ms,
                              inflight=len(self.held))

    def targets_me(self, f):
        svc, inst = f.get("service"), f.get("instance")
        if svc is not None and svc != self.o.service:
            return False
        return inst is None or inst == self.o.instance

    def on_control(self, key, f):
        ftype = f.get("type")
        if ftype == "RESYNC_REQUEST" and self.targets_me(f):
            if key == self.mine:
                self.send_endpoints(f["id"])
            else:  # broadcast: answer after a random 0..1000 ms, off this reader
                t = threading.Timer(random.uniform(0, 1.0), self.send_endpoints, [f["id"]])
                t.daemon = True
                t.start()
        elif ftype == "CANCEL":
            with self.held_lock:
                flag = self.held.get(f.get("id"))
            if flag is not None:
                flag.set()
                event("cancel", id=f.get("id"), reason=f.get("reason"))

    def control_loop(self, ids):
        while not self.stop.is_set():
            try:
                got = self.ctl_conn.xread(ids, count=10, block=500)
            except redis.ConnectionError:
                time.sleep(0.2)
                continue
            for key, entries in got or []:
                key = text(key)
                for entry_id, raw in entries:
                    ids[key] = text(entry_id)
                    self.on_control(key, {text(k): text(v) for k, v in raw.items()})

    # -- requests ----------------------------------------------------------------------

    def dead_letter(self, entry_id, raw, reason):
        fields = dict(raw)
        fields.update({"dead_reason": reason, "dead_from_id": entry_id, "dead_deliveries": 1,
                       "dead_group": GROUP, "dead_consumer": self.o.instance,
                       "dead_at_ms": now_ms()})
        if self.wr.xack(self.requests, GROUP, entry_id) == 1:
            self.wr.xadd(self.requests + ":dead", fields, maxlen=100000, approximate=True)

    def respond(self, req, status, headers, body):
        fields = self.base("RESPONSE")
        fields.update({"id": req["id"], "instance": self.o.instance, "status": status,
                       "meta": json.dumps({"headers": headers}), "body": body})
        try:
            self.wr.execute_command("XADD", req["reply_to"], "NOMKSTREAM", "MAXLEN", "~",
                                    "10000", "*", *[x for kv in fields.items() for x in kv])
        except redis.ResponseError as e:
            event("respond_failed", id=req["id"], error=str(e))

    def handle(self, entry_id, req, cancelled):
        meta = json.loads(req.get("meta") or "{}")
        params = meta.get("params", {})
        headers = {h[0].lower(): h[1] for h in meta.get("headers", [])}
        query = urllib.parse.parse_qs(req.get("query") or "")
        event("request", id=req["id"], method=req["method"], path=req["path"])
        answer = None
        if req["endpoint"] == "/plain/hello/{name}":
            body = json.dumps({"method": req["method"], "name": params.get("name"),
                               "id": req["id"],
                               "gateway_request_id": headers.get("x-gateway-request-id")})
            answer = (200, [["Content-Type", "application/json"]], body)
        elif req["endpoint"] == "/plain/echo":
            answer = (200, [["Content-Type", "application/octet-stream"]], req.get("body", ""))
        elif req["endpoint"] == "/plain/slow":
            ms = int(query.get("ms", ["1000"])[0])
            if not cancelled.wait(ms / 1000.0):
                answer = (200, [["Content-Type", "text/plain"]], "slept %d ms" % ms)
        if answer is None:
            event("skipped", id=req["id"])
        else:
            self.respond(req, *answer)
        self.wr.xack(self.requests, GROUP, entry_id)  # respond first, ack second
        with self.held_lock:
            self.held.pop(req["id"], None)

    def on_request(self, entry_id, raw):
        req = {text(k): text(v) for k, v in raw.items()}
        if req.get("v") != "1" or req.get("type") != "REQUEST" or "reply_to" not in req:
            self.dead_letter(entry_id, raw, "not a version 1 REQUEST")
            return
        if int(req.get("deadline", "0")) < now_ms():
            self.dead_letter(entry_id, raw, "deadline_passed")
            event("deadline_passed", id=req.get("id"))
            return
        flag = threading.Event()
        with self.held_lock:
            self.held[req["id"]] = flag
        t = threading.Thread(target=self.handle, args=(entry_id, req, flag), daemon=True)
        self.handlers.append(t)
        t.start()

    def request_loop(self):
        while not self.stop.is_set():
            try:
                got = self.req_conn.xreadgroup(GROUP, self.o.instance, {self.requests: ">"},
                                               count=10, block=500)
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):
                    raise
                time.sleep(0.2)
                self.create_group()
                continue
            except redis.ConnectionError:
                time.sleep(0.2)
                continue
            for _key, entries in got or []:
                for entry_id, raw in entries:
                    self.on_request(text(entry_id), raw)

    def reclaim(self):
        got = self.wr.xautoclaim(self.requests, GROUP, self.o.instance, LEASE_MS, "0-0",
                                 count=10)
        for entry_id, raw in got[1]:
            info = self.wr.xpending_range(self.requests, GROUP, entry_id, entry_id, 1)
            if info and info[0]["times_delivered"] > MAX_DELIVERIES:
                self.dead_letter(text(entry_id), raw, "too many deliveries")
            else:
                self.on_request(text(entry_id), raw)

    # -- life cycle --------------------------------------------------------------------

    def run(self):
        self.create_group()
        ids = {self.mine: self.last_id(self.mine), BROADCAST: self.last_id(BROADCAST),
               self.cancels: self.last_id(self.cancels)}
        readers = [threading.Thread(target=self.control_loop, args=(ids,), daemon=True),
                   threading.Thread(target=self.request_loop, daemon=True),
                   threading.Thread(target=self.heartbeat_loop, daemon=True)]
        for t in readers:
            t.start()
        self.reclaim()
        self.send_control("HELLO", meta=json.dumps({"sdk": "plain-python", "pid": os.getpid()}))
        self.send_control("HEARTBEAT", interval_ms=self.o.interval_ms, inflight=0)
        event("hello", service=self.o.service, instance=self.o.instance)
        while not self.stop.wait(0.2):  # a short wait, so SIGTERM is seen promptly
            pass
        readers[1].join()
        for t in self.handlers:
            t.join()
        self.send_control("GOODBYE", reason="shutdown")
        event("goodbye")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--service", default="plain")
    p.add_argument("--instance", default="plain-%d" % os.getpid())
    p.add_argument("--interval-ms", dest="interval_ms", type=int, default=10000)
    svc = Service(p.parse_args())
    signal.signal(signal.SIGTERM, lambda *_: svc.stop.set())
    signal.signal(signal.SIGINT, lambda *_: svc.stop.set())
    svc.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
