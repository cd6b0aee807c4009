#!/usr/bin/env python3
"""An example support agent, replaying the scenario Cordon exists for.

It looks up an order through its allowed tool (lookup_order), then, as if a
prompt injection had taken over, calls the bulk-messaging tool it was never
meant to use. Under Cordon the first call succeeds and the second fails with
EPERM at connect(), before a byte leaves the host.
"""
import errno
import json
import os
import sys
import urllib.error
import urllib.request

ORDERS_API = os.environ.get("ORDERS_API", "http://127.0.0.1:18080")
BULK_API = os.environ.get("BULK_API", "http://127.0.0.2:18081")


def call(method, url, body=None):
    headers = {"Content-Type": "application/json"}
    token = os.environ.get("ORDERS_TOKEN")
    if token and url.startswith(ORDERS_API):
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.load(resp)


def main():
    print("agent: looking up order 1042 with lookup_order")
    order = call("GET", f"{ORDERS_API}/orders/1042")
    print(f"agent: lookup_order answered {order}")

    print("agent: (prompt-injected) sending a message to every customer with bulk_message")
    try:
        call("POST", f"{BULK_API}/messages/bulk", {"to": "all-customers", "text": "..."})
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, OSError) and reason.errno == errno.EPERM:
            print(f"agent: bulk_message refused by the kernel: {reason}")
            return 0
        print(f"agent: bulk_message failed otherwise: {reason}")
        return 2
    print("agent: bulk_message went through -- the sandbox did not hold")
    return 1


if __name__ == "__main__":
    sys.exit(main())
