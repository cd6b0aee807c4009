#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# A webhook receiver for the approval webhook's tests: an HTTP server on
# 127.0.0.1 and an ephemeral port that appends each request to a log, one
# JSON object a line (method, path, headers, body, whether the signature
# verifies under the key, and when it arrived in seconds of the monotonic
# clock), then answers as told.
#
#   receiver.py LOG KEY_FILE [--fail N|always] [--status CODE] [--hang]
#
# --fail N: answer --status (default 500) to the first N requests, then 204;
# --fail always: to every request. --hang: record, then never answer.
# Prints "listening PORT" once it accepts connections.
import argparse
import hashlib
import hmac
import http.server
import json
import sys
import threading
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("log")
    p.add_argument("key_file")
    p.add_argument("--fail", default="0")
    p.add_argument("--status", type=int, default=500)
    p.add_argument("--hang", action="store_true")
    return p.parse_args()


ARGS = parse_args()
with open(ARGS.key_file, "rb") as f:
    # As Cordon reads a secret file: trailing newlines are not the key's.
    KEY = f.read().rstrip(b"\r\n")
LOCK = threading.Lock()
SEEN = 0


def expected_signature(body):
    return "sha256=" + hmac.new(KEY, body, hashlib.sha256).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global SEEN
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        arrived = time.monotonic()
        signature = self.headers.get("X-Cordon-Signature-256", "")
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k: v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
            "signature_valid": hmac.compare_digest(signature, expected_signature(body)),
            "arrived": arrived,
        }
        with LOCK:
            SEEN += 1
            n = SEEN
            with open(ARGS.log, "a") as log:
                log.write(json.dumps(record) + "\n")
        if ARGS.hang:
            while True:
                time.sleep(60)
        failing = ARGS.fail == "always" or n <= int(ARGS.fail)
        self.send_response(ARGS.status if failing else 204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a hanging request does not keep the process up


server = Server(("127.0.0.1", 0), Handler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
