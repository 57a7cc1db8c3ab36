#!/usr/bin/env bash
# Starts `make run` on a fresh var/ directory, waits for the login page and a signed-in customer list, checks
# that it serves like production (DEBUG off: the app's own 404 page, static files served, a generated secret
# key in the data folder), then stops web, worker and beat. Fails if any step does not happen in its time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
export TRIALLOOP_VAR_DIR
TRIALLOOP_VAR_DIR=$(mktemp -d)
export PORT=8765
log="$TRIALLOOP_VAR_DIR/make-run.log"
start=$(date +%s)
setsid env -u DATABASE_URL -u CELERY_BROKER_URL -u DEBUG -u SECRET_KEY make run >"$log" 2>&1 < /dev/null &
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
# DEBUG is off: an unknown address answers 404 with the app's own page, never Django's debug page.
status=$(curl -sS -b "$jar" -o "$TRIALLOOP_VAR_DIR/404.html" -w '%{http_code}' "http://127.0.0.1:$PORT/no-such-page/")
[ "$status" = 404 ] || { echo "unknown page answered $status"; exit 1; }
grep -q "There is nothing at this address" "$TRIALLOOP_VAR_DIR/404.html" \
  && ! grep -q "DEBUG = True" "$TRIALLOOP_VAR_DIR/404.html" || { cat "$TRIALLOOP_VAR_DIR/404.html"; echo "not the app's 404 page"; exit 1; }
# Static files are served without DEBUG, with their content type.
curl -fsS -o /dev/null -D "$TRIALLOOP_VAR_DIR/static-headers" "http://127.0.0.1:$PORT/static/css/trialloop.css" \
  && grep -qi "^content-type: text/css" "$TRIALLOOP_VAR_DIR/static-headers" || { echo "stylesheet not served"; exit 1; }
curl -fsS -o /dev/null "http://127.0.0.1:$PORT/static/vendor/chartjs/chart.umd.js" || { echo "Chart.js not served"; exit 1; }
# The secret key was generated into the data folder, readable by its owner only.
[ "$(stat -c %a "$TRIALLOOP_VAR_DIR/secret_key.txt")" = 600 ] || { echo "no private secret_key.txt in the data folder"; exit 1; }
echo "smoke run passed"
