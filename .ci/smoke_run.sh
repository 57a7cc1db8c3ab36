#!/usr/bin/env bash
# Starts `make run` on a fresh var/ directory, waits for the login page and a signed-in customer list,
# then stops web, worker and beat. Fails if any step does not happen within its time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
export TRIALLOOP_VAR_DIR
TRIALLOOP_VAR_DIR=$(mktemp -d)
export PORT=8765
log="$TRIALLOOP_VAR_DIR/make-run.log"
start=$(date +%s)
setsid env -u DATABASE_URL -u CELERY_BROKER_URL make run >"$log" 2>&1 < /dev/null &
pid=$!
cleanup() { kill -TERM -- "-$pid" 2>/dev/null || true; sleep 2; kill -KILL -- "-$pid" 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 1 240); do
  if curl -fs -o /dev/null "http://127.0.0.1:$PORT/login/"; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then cat "$log"; echo "make run exited early"; exit 1; fi
  sleep 1
done
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/login/" || { cat "$log"; echo "no login page"; exit 1; }
echo "first page after $(( $(date +%s) - start )) s"
password=$(cat "$TRIALLOOP_VAR_DIR/demo_password.txt")
jar="$TRIALLOOP_VAR_DIR/cookies"
curl -fsS -c "$jar" -b "$jar" -o /dev/null "http://127.0.0.1:$PORT/login/"
token=$(awk '$6=="csrftoken"{print $7}' "$jar")
curl -fsS -c "$jar" -b "$jar" -o /dev/null -H "Referer: http://127.0.0.1:$PORT/login/" \
  --data-urlencode "csrfmiddlewaretoken=$token" --data-urlencode "username=admin" --data-urlencode "password=$password" \
  "http://127.0.0.1:$PORT/login/"
# Into a file first: `curl | grep -q` fails under pipefail when grep stops reading before curl has written all.
curl -fsS -b "$jar" -o "$TRIALLOOP_VAR_DIR/customers.html" "http://127.0.0.1:$PORT/customers/" \
  && grep -q "customers" "$TRIALLOOP_VAR_DIR/customers.html" || { cat "$log"; echo "customer list not shown"; exit 1; }
grep -q "Sign in as admin" "$log" || { cat "$log"; echo "login not printed"; exit 1; }
echo "smoke run passed"
