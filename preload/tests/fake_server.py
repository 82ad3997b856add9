#!/usr/bin/env python3
"""A deliberately simple policy server for the preload tests (stdlib only).

It speaks just enough of DESIGN.md section 5: POST /v1/preflight/exec answers by substring
rules on params.command, and every request is appended as one JSON line to --log before
the answer is sent, so tests can assert exactly what the library sent. The behaviour can
be switched at any time by writing a mode name into --mode-file:

  normal     decide by rules (deny substrings -> deny, "askme" -> ask)
  500 401 403  that status with a JSON error body
  malformed  200 with a truncated JSON body
  oversized  200 with a 20 KiB body
  instring   200 where "allowed":true appears only inside a string value
  slow       sleep 5 s, then answer normally
  close      close the connection without answering
  chunked    normal decision, sent with Transfer-Encoding: chunked in small pieces
  502 503    that status with a JSON error body
  hang       read the request, never answer (the thread gives up after 30 s)
  slowok     sleep 1.2 s (within the library's 2 s), then answer normally
  drip-slow  the normal answer one byte every 50 ms: ~10 s in all, so only a total
             deadline (not a per-read timeout) stops the library from waiting it out
  drip-fast  the normal answer one byte every 2 ms, complete well within the timeout
  cut-body   headers and half of a Content-Length body, then close
  cut-headers  part of the status line and headers, then close
  huge       200 with a 1 MiB body and its Content-Length
  huge-close 200 with a 1 MiB body delimited by closing the connection (no length)
  stringbool 200 with "allowed":"true" (a string, not a boolean)
  early-413  413 as soon as the headers are in, without reading the body, then close (a
             body over a size limit; the unread body makes the kernel reset the
             connection while the client may still be sending)

--listen-only: listen on a port but never accept (connections complete in the kernel's
queue, nobody reads them). --backlog-full: listen with a full accept queue, so a new
connection's SYN is dropped and connect() itself hangs.

Prints the TCP port (or the socket path) on stdout once listening.
"""

import argparse
import json
import os
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-rampart"

    def log_message(self, *args):  # quiet
        pass

    def address_string(self):
        return "unix"

    def mode(self):
        try:
            with open(self.server.opts.mode_file) as f:
                return f.read().strip() or "normal"
        except OSError:
            return self.server.opts.mode

    def record(self, body):
        entry = {
            "method": self.command,
            "path": self.path,
            "authorization": self.headers.get("Authorization"),
            "connection": self.headers.get("Connection"),
            "content_length": int(self.headers.get("Content-Length") or 0),
            "body_len": len(body),
            # The client's port identifies the connection (keep-alive tests).
            "peer": self.client_address[1] if isinstance(self.client_address, tuple) else None,
        }
        try:
            entry["body"] = json.loads(body)
        except ValueError:
            entry["raw"] = body.decode("utf-8", "replace")
        with LOCK, open(self.server.opts.log, "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()

    def send_json(self, status, obj, chunked=False, raw=None):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 7):
                piece = data[i : i + 7]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/healthz":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self):
        if self.mode() == "early-413":
            self.close_connection = True
            return self.send_json(413, {"error": "request body too large"})
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.record(body)
        mode = self.mode()
        token = self.server.opts.token
        if token and self.headers.get("Authorization") != "Bearer " + token:
            return self.send_json(401, {"error": "unauthorized"})
        if mode in ("500", "502", "503", "401", "403"):
            return self.send_json(int(mode), {"error": "fake " + mode})
        if mode == "hang":
            time.sleep(30)
            self.close_connection = True
            return
        if mode == "cut-headers":
            return self.cut(b"HTTP/1.1 200 OK\r\nContent-Type: applica")
        if mode == "cut-body":
            body = b'{"allowed":true,"decision":"allow","message":""}'
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            return self.cut(head + body[: len(body) // 2])
        if mode == "huge":
            return self.send_json(200, {"allowed": True, "pad": "x" * (1 << 20)})
        if mode == "huge-close":
            data = json.dumps({"allowed": True, "pad": "x" * (1 << 20)}).encode()
            return self.cut(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + data)
        if mode == "stringbool":
            return self.send_json(200, {"allowed": "true", "decision": "allow", "message": ""})
        if mode == "malformed":
            return self.send_json(200, None, raw=b'{"allowed":true,"decision":')
        if mode == "oversized":
            return self.send_json(200, {"allowed": True, "pad": "x" * 20000})
        if mode == "instring":
            return self.send_json(
                200, {"message": '"allowed":true', "decision": "allow", "note": "{\"allowed\":true}"}
            )
        if mode == "close":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if mode == "slow":
            time.sleep(5)
        if mode == "slowok":
            time.sleep(1.2)
        try:
            req = json.loads(body)
            command = req["params"]["command"]
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, {"error": "bad request"})
        answer = self.decide(req, command)
        if mode in ("drip-slow", "drip-fast"):
            data = json.dumps(answer).encode()
            raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            raw += b"Content-Length: %d\r\n\r\n%s" % (len(data), data)
            return self.drip(raw, 0.05 if mode == "drip-slow" else 0.002)
        self.send_json(200, answer, chunked=(mode == "chunked"))

    def cut(self, raw):
        """Sends `raw` and closes the connection (no more bytes, whatever was promised)."""
        self.close_connection = True
        try:
            self.wfile.write(raw)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # the client gave up first: that is what some tests expect

    def drip(self, raw, pause):
        """Sends `raw` one byte at a time, `pause` seconds apart, until done or the client
        goes away."""
        self.close_connection = True
        try:
            for i in range(len(raw)):
                self.wfile.write(raw[i : i + 1])
                self.wfile.flush()
                time.sleep(pause)
        except OSError:
            pass

    def decide(self, req, command):
        answer = {"matched_policies": [], "eval_duration_us": 1, "audit_id": "fake-1"}
        low = command.lower()
        if any(s in low for s in self.server.opts.deny):
            answer.update(allowed=False, decision="deny", message="Destructive command blocked")
        elif "askme" in low:
            if req.get("wait_ms"):
                time.sleep(1.5)  # a person thinking it over
                if "approveme" in low:
                    answer.update(allowed=True, decision="allow", message="approved by test")
                else:
                    answer.update(allowed=False, decision="deny", message="denied by test")
            else:
                answer.update(allowed=False, decision="ask", message="Needs approval")
        else:
            answer.update(allowed=True, decision="allow", message="")
        if not req.get("enforce", True) and not answer["allowed"]:
            answer["policy_decision"] = answer["decision"]
            answer.update(allowed=True, decision="allow")
        return answer


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--mode-file", default="/nonexistent")
    ap.add_argument("--unix")
    ap.add_argument("--token")
    ap.add_argument("--deny", action="append", default=None)
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--listen-only", action="store_true")
    ap.add_argument("--backlog-full", action="store_true")
    opts = ap.parse_args()
    if opts.listen_only or opts.backlog_full:
        return silent_listener(opts)
    opts.deny = [d.lower() for d in (opts.deny or ["denyme", "rm -rf"])]
    if opts.unix:
        if os.path.exists(opts.unix):
            os.unlink(opts.unix)
        srv = UnixServer(opts.unix, Handler)
        where = opts.unix
    else:
        ThreadingHTTPServer.daemon_threads = True
        srv = ThreadingHTTPServer((opts.addr, 0), Handler)
        where = str(srv.server_address[1])
    srv.opts = opts
    print(where, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


def silent_listener(opts):
    """A TCP port that never answers: nobody accepts (--listen-only), or the accept queue
    is full so connect() itself cannot complete (--backlog-full)."""
    srv = socket.socket()
    srv.bind((opts.addr, 0))
    srv.listen(0 if opts.backlog_full else 64)
    port = srv.getsockname()[1]
    fillers = []
    if opts.backlog_full:
        # listen(0) queues one connection; two more make sure the queue is over-full.
        for _ in range(3):
            c = socket.socket()
            c.setblocking(False)
            try:
                c.connect((opts.addr, port))
            except BlockingIOError:
                pass
            fillers.append(c)
        time.sleep(0.2)
    print(port, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
