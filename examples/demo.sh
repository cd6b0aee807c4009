#!/usr/bin/env bash
# The demo: a support agent under profiles/examples/support-agent.json.
# Two loopback HTTP servers stand in for the orders API (lookup_order,
# allowed) and the bulk-messaging API (bulk_message, denied). The agent
# calls both; Cordon lets the first through and refuses the second, and the
# audit log shows it. Run as root from the repository's top directory:
#
#   examples/demo.sh [PATH/TO/agent-run]
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
agent_run=${1:-$here/build/agent-run}
audit_log=$(mktemp /tmp/cordon-demo-audit.XXXXXX)
# The agent gets a private, empty /tmp, /var/tmp and /dev/shm: its script
# is copied to where it can read it, wherever this checkout lies.
stage=$(mktemp -d /run/cordon-demo.XXXXXX)
chmod 755 "$stage"
install -m 644 "$here/examples/support_agent.py" "$stage/"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -f "$audit_log"
  rm -rf "$stage"
}
trap cleanup EXIT

# agent-run reads a credential's source file only if root owns it and nobody
# else can read it; git keeps neither, so a fresh clone's token file needs this.
chown root:root "$here/examples/orders-token.txt"
chmod 600 "$here/examples/orders-token.txt"

# 127.0.0.2 answers on Linux's loopback without any setup (all of 127/8 is local).
python3 "$here/examples/tool_server.py" 127.0.0.1 18080 lookup_order & pids+=($!)
python3 "$here/examples/tool_server.py" 127.0.0.2 18081 bulk_message & pids+=($!)
for port in 18080 18081; do
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.$((port - 18079))/$port) 2>/dev/null && break
    sleep 0.1
  done
done

echo "== effective policy (agent-run --check)"
"$agent_run" --check --profile "$here/profiles/examples/support-agent.json"

echo
echo "== the agent, under Cordon"
status=0
"$agent_run" --profile "$here/profiles/examples/support-agent.json" --audit-log "$audit_log" \
  -- python3 "$stage/support_agent.py" || status=$?

echo
echo "== audit log"
cat "$audit_log"
echo
echo "agent-run exited with $status"
exit "$status"
