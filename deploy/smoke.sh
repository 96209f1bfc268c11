#!/usr/bin/env bash
# A smoke test of a running compose deployment, for an operator, from the directory that holds
# the compose file. Checks, in order, and prints one "ok"/"FAIL" line each:
#   1. health: /healthz answers, /readyz says the database and the broker are ok
#   2. a key: ARCHBENCH_API_KEY, or a new one (`archbench keys create` in the migrate image)
#   3. a small comparison, submitted and followed to its report and verdict
#   4. a worker killed mid-trial (docker kill of its container, after an epoch): the trial
#      ends succeeded on another worker, on a later attempt
#   5. an api restart keeps the data: the same comparison, status and verdict afterwards
# Exit status 0 when every check passed; the first failure stops the script (exit 1).
#
# Settings (environment):
#   ARCHBENCH_URL      the api (default http://127.0.0.1:8000)
#   ARCHBENCH_API_KEY  a key to use (default: create one for tenant SMOKE_TENANT, "smoke")
#   COMPOSE            the compose command (default `docker compose`, else `docker-compose`),
#                      e.g. COMPOSE="docker-compose -f docker-compose.cpu.yml"
#   SMOKE_WORKERS      workers to scale to for step 4 (default 2; at least 2)
#   SMOKE_SKIP_KILL    1: skip step 4 (a single-worker host)
#   SMOKE_TIMEOUT      seconds each wait may take (default 900)
# Needs curl and jq. Step 4 scales the worker service and leaves it at SMOKE_WORKERS.
set -euo pipefail

URL=${ARCHBENCH_URL:-http://127.0.0.1:8000}
URL=${URL%/}
TENANT=${SMOKE_TENANT:-smoke}
WORKERS=${SMOKE_WORKERS:-2}
TIMEOUT=${SMOKE_TIMEOUT:-900}
if [[ -z ${COMPOSE:-} ]]; then
  if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"; else COMPOSE="docker-compose"; fi
fi
read -r -a COMPOSE_CMD <<<"$COMPOSE"

ok() { printf 'ok    %s\n' "$*"; }
fail() {
  printf 'FAIL  %s\n' "$*" >&2
  exit 1
}
need() { command -v "$1" >/dev/null 2>&1 || fail "this script needs $1"; }
need curl
need jq

AUTH=()
api() { # api METHOD PATH [curl args...]: the answer's body; fails on an HTTP error
  local method=$1 path=$2
  shift 2
  curl -sS --fail-with-body -X "$method" "${AUTH[@]}" "$URL$path" "$@"
}
deadline() { echo $(($(date +%s) + TIMEOUT)); }
waited_out() { (($(date +%s) > $1)); }

# Follow a comparison to its end; print its final status.
wait_comparison() {
  local id=$1 until status
  until=$(deadline)
  while :; do
    status=$(api GET "/v1/comparisons/$id" | jq -r .status)
    case $status in succeeded | failed | cancelled)
      echo "$status"
      return
      ;;
    esac
    waited_out "$until" && fail "comparison $id still $status after ${TIMEOUT}s"
    sleep 3
  done
}

submit() { # submit SPEC_JSON: the new comparison's id
  api POST /v1/comparisons -H 'Content-Type: application/json' --data-binary "$1" | jq -r .id
}

spec() { # spec NAME EPOCHS SAMPLES FILTERS SEEDS_JSON
  jq -n --arg name "$1" --argjson epochs "$2" --argjson samples "$3" --argjson filters "$4" \
    --argjson seeds "$5" '{
    name: $name,
    dataset: {name: "mnist_5k", max_samples: $samples, split_seed: 0},
    training: {epochs: $epochs, batch_size: 32},
    seeds: $seeds,
    variants: [
      {name: "cnn", layers: [
        {type: "Conv2D", filters: $filters, kernel_size: 3, activation: "relu"},
        {type: "MaxPooling2D", pool_size: 2},
        {type: "Flatten"},
        {type: "Dense", units: 10, activation: "softmax"}]},
      {name: "mlp", layers: [
        {type: "Flatten"},
        {type: "Dense", units: 32, activation: "relu"},
        {type: "Dense", units: 10, activation: "softmax"}]}]}'
}

# 1. health -----------------------------------------------------------------------------
curl -sSf "$URL/healthz" >/dev/null || fail "$URL/healthz does not answer"
ready=$(curl -sS "$URL/readyz") || fail "$URL/readyz does not answer"
[[ $(jq -r .status <<<"$ready") == ok ]] || fail "not ready: $ready"
ok "health: $URL answers, ready: $(jq -c .checks <<<"$ready")"

# 2. a key ------------------------------------------------------------------------------
KEY=${ARCHBENCH_API_KEY:-}
if [[ -z $KEY ]]; then
  KEY=$("${COMPOSE_CMD[@]}" run --rm -T migrate archbench keys create --tenant "$TENANT" \
    --name smoke 2>/dev/null | tail -n 1) || fail "could not create a key with $COMPOSE"
fi
[[ $KEY == ab_* ]] || fail "no API key (got '${KEY:0:12}...')"
AUTH=(-H "Authorization: Bearer $KEY")
curl -sS -o /dev/null -w '%{http_code}' "$URL/v1/comparisons" | grep -qx 401 ||
  fail "the api answers without a key (is ARCHBENCH_AUTH on?)"
api GET /v1/comparisons >/dev/null || fail "the key is refused"
ok "key: ${KEY:0:10}... is accepted, a request without one is 401"

# 3. a small comparison to its report ----------------------------------------------------
small=$(submit "$(spec "smoke: small" 2 400 4 '[0, 1, 2]')")
status=$(wait_comparison "$small")
[[ $status == succeeded ]] || fail "comparison $small ended $status"
verdict=$(api GET "/v1/comparisons/$small/report" | jq -r .verdict)
[[ -n $verdict && $verdict != null ]] || fail "comparison $small has no verdict"
api GET "/v1/comparisons/$small/report.png" -o /dev/null || fail "no report.png"
ok "comparison $small succeeded: $verdict"

# 4. a worker killed mid-trial ------------------------------------------------------------
if [[ ${SMOKE_SKIP_KILL:-0} == 1 ]]; then
  ok "worker kill: skipped (SMOKE_SKIP_KILL=1)"
else
  ((WORKERS >= 2)) || fail "SMOKE_WORKERS must be at least 2 (another worker finishes the trial)"
  "${COMPOSE_CMD[@]}" up -d --scale "worker=$WORKERS" --no-recreate worker >/dev/null 2>&1 ||
    fail "could not scale the workers to $WORKERS"
  long=$(submit "$(spec "smoke: worker killed" 8 5000 32 '[0]')")
  until=$(deadline)
  while :; do # a running trial with a finished epoch (so it has a checkpoint)
    trial=$(api GET "/v1/comparisons/$long/trials" |
      jq -c 'first(.items[] | select(.status == "running" and .epochs_done >= 1)) // empty')
    [[ -n $trial ]] && break
    waited_out "$until" && fail "no trial of $long ran an epoch within ${TIMEOUT}s"
    sleep 1
  done
  trial_id=$(jq -r .id <<<"$trial")
  owner=$(jq -r .worker <<<"$trial") # <host>[/pidns-<inode>]:<pid>
  host=${owner%:*}
  victim=""
  for c in $("${COMPOSE_CMD[@]}" ps -q worker); do
    # The identity its worker reports (worker/heartbeat.py): hostname, plus the PID
    # namespace when it is not the machine's own.
    identity=$(docker exec "$c" sh -c \
      'ns=$(readlink /proc/self/ns/pid | tr -dc 0-9); h=$(uname -n);
       if [ "$ns" = 4026531836 ]; then echo "$h"; else echo "$h/pidns-$ns"; fi') || continue
    if [[ $identity == "$host" ]]; then
      victim=$c
      break
    fi
  done
  [[ -n $victim ]] || fail "no worker container is $host (the trial's worker)"
  docker kill "$victim" >/dev/null
  ok "killed worker container ${victim:0:12} while it trained trial $trial_id (epoch $(jq -r .epochs_done <<<"$trial"))"
  status=$(wait_comparison "$long")
  after=$(api GET "/v1/comparisons/$long/trials" | jq -c --arg id "$trial_id" '.items[] | select(.id == $id)')
  [[ $status == succeeded && $(jq -r .status <<<"$after") == succeeded ]] ||
    fail "after the kill, comparison $long ended $status: $after"
  [[ $(jq -r .attempts <<<"$after") -ge 2 ]] || fail "trial $trial_id was not retried: $after"
  [[ $(jq -r .worker <<<"$after") != "$owner" ]] || fail "trial $trial_id ended on the killed worker"
  ok "trial $trial_id finished elsewhere: attempt $(jq -r .attempts <<<"$after") on $(jq -r .worker <<<"$after")"
  "${COMPOSE_CMD[@]}" up -d --scale "worker=$WORKERS" worker >/dev/null 2>&1 ||
    fail "could not bring the killed worker back"
fi

# 5. an api restart keeps the data --------------------------------------------------------
before=$(api GET "/v1/comparisons/$small" | jq -c '{id, status}')
"${COMPOSE_CMD[@]}" restart api >/dev/null 2>&1 || fail "could not restart the api"
until=$(deadline)
until curl -sf "$URL/readyz" >/dev/null 2>&1; do
  waited_out "$until" && fail "the api did not come back within ${TIMEOUT}s"
  sleep 1
done
again=$(api GET "/v1/comparisons/$small" | jq -c '{id, status}')
[[ $again == "$before" ]] || fail "after the restart: $again, before: $before"
[[ $(api GET "/v1/comparisons/$small/report" | jq -r .verdict) == "$verdict" ]] ||
  fail "the verdict changed across the restart"
ok "api restarted: comparison $small is still $(jq -r .status <<<"$again"), same verdict"
echo "smoke test passed"
