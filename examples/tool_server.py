#!/usr/bin/env python3
"""A stand-in for a tool's HTTP API, for the demo and the tests.

    tool_server.py ADDRESS PORT NAME

Answers every GET and POST with a small JSON document naming the tool, and
logs each request (method, path, whether a bearer token came) to stderr.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    tool = "tool"

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        has_token = self.headers.get("Authorization", "").startswith("Bearer ")
        body = json.dumps({"tool": self.tool, "path": self.path, "authorized": has_token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, fmt, *args):
        sys.stderr.write(f"[{self.tool} server] {fmt % args}\n")


def main():
    address, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    Handler.tool = name
    server = ThreadingHTTPServer((address, port), Handler)
    print(f"{name} listening on {address}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
