#!/usr/bin/env bash
# Smoke test of the container image, where a container engine runs:
#
#   contrib/container-smoke.sh            # docker, else podman
#   ENGINE=podman contrib/container-smoke.sh
#   IMAGE=greenlight:dev SKIP_BUILD=1 contrib/container-smoke.sh   # an image built before
#
# Builds the image from the Dockerfile, then checks, one line per step:
#  1. the image's own config answers on every interface (-p works): 503 with
#     the mount hint over HTTP and HTTPS (self-signed certificate in the volume);
#  2. it runs as uid 10001 and the HEALTHCHECK command succeeds;
#  3. with a configuration directory mounted over /etc/greenlight, it proxies to
#     the app container `blue` by name, `greenlight switch app green --wait`
#     inside the container moves traffic to `green`, and the file says so;
#  4. `stop -t 35` (SIGTERM) ends it cleanly (exit 0) well before the deadline.
# The two apps are the same image answering with a fixed body, so nothing but
# the engine and curl is needed. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-$(command -v docker >/dev/null && docker info >/dev/null 2>&1 && echo docker || echo podman)}
IMAGE=${IMAGE:-greenlight:smoke}
RUN_ID=glsmoke$$
NET=$RUN_ID-net
TMP=$(mktemp -d)
STEP=""
step() { STEP="$*"; printf '== %s\n' "$*"; }
fail() { printf 'FAIL (%s): %s\n' "$STEP" "$*" >&2; exit 1; }
e() { "$ENGINE" "$@"; }

cleanup() {
  # One at a time: an engine may give up on the whole list at a name it
  # does not know (this one was removed already). -v: their anonymous volumes.
  local c
  for c in default gl blue green; do e rm -f -v "$RUN_ID-$c" >/dev/null 2>&1 || true; done
  e network rm "$NET" >/dev/null 2>&1 || true
  e volume rm "$RUN_ID-certs" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# Polls `$@` for up to 30 s (two tries a second).
eventually() {
  local _
  for _ in $(seq 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
host_port() { e port "$1" "$2/tcp" | head -1 | sed 's/.*://'; }

if [ -z "${SKIP_BUILD:-}" ]; then
  step "build $IMAGE with $ENGINE"
  fmt=(); [ "$ENGINE" = podman ] && fmt=(--format docker)   # OCI images drop HEALTHCHECK
  e build "${fmt[@]}" -t "$IMAGE" . || fail "build"
fi

step "the image's own config answers on every interface"
e run -d --name "$RUN_ID-default" -p 127.0.0.1::8080 -p 127.0.0.1::8443 \
  -v "$RUN_ID-certs:/var/lib/greenlight/certs" "$IMAGE" >/dev/null
http=$(host_port "$RUN_ID-default" 8080)
https=$(host_port "$RUN_ID-default" 8443)
eventually curl -s -o /dev/null "http://127.0.0.1:$http/" || fail "nothing answers on :8080 ($(e logs "$RUN_ID-default" 2>&1 | tail -3))"
code=$(curl -s -o "$TMP/body" -w '%{http_code}' "http://127.0.0.1:$http/")
if [ "$code" != 503 ] || ! grep -q '/etc/greenlight' "$TMP/body"; then fail "http: $code $(cat "$TMP/body")"; fi
code=$(curl -sk -o /dev/null -w '%{http_code}' "https://localhost:$https/" --resolve "localhost:$https:127.0.0.1")
[ "$code" = 503 ] || fail "https: $code"
e exec "$RUN_ID-default" sh -c 'ls /var/lib/greenlight/certs' | grep -q . || fail "no certificate in the volume"
echo "ok: 503 with the mount hint on http and https; certificate in the volume"

step "non-root, HEALTHCHECK command"
uid=$(e exec "$RUN_ID-default" id -u)
[ "$uid" = 10001 ] || fail "runs as uid $uid"
health=$(e inspect --format '{{json .Config.Healthcheck}}' "$RUN_ID-default")
grep -q 'greenlight' <<<"$health" || fail "no HEALTHCHECK in the image: $health"
e exec "$RUN_ID-default" greenlight status -c /etc/greenlight/greenlight.yaml >/dev/null || fail "status"
if [ "$ENGINE" = podman ]; then
  e healthcheck run "$RUN_ID-default" || fail "podman healthcheck run"
else
  eventually sh -c "[ \"\$($ENGINE inspect --format '{{.State.Health.Status}}' $RUN_ID-default)\" = healthy ]" \
    || fail "not healthy"
fi
echo "ok: uid 10001, healthy"
e rm -f -v "$RUN_ID-default" >/dev/null

step "proxy to blue by name, switch to green"
e network create "$NET" >/dev/null
for pool in blue green; do
  mkdir -p "$TMP/$pool"
  cat >"$TMP/$pool/greenlight.yaml" <<YAML
listeners: {http: {address: "0.0.0.0:3000"}}
admin: {address: "127.0.0.1:9090"}
sites:
  app:
    default: true
    routes: [{path: /, respond: {body: "$pool\n"}}]
YAML
  chmod -R a+rX "$TMP/$pool"
  e run -d --name "$RUN_ID-$pool" --network "$NET" --network-alias "$pool" \
    -v "$TMP/$pool:/etc/greenlight:ro" "$IMAGE" >/dev/null
done
mkdir -p "$TMP/deploy"
cat >"$TMP/deploy/greenlight.yaml" <<'YAML'
listeners: {http: {address: "0.0.0.0:8080"}}
admin: {address: "127.0.0.1:9090"}
sites:
  app:
    default: true
    routes: [{path: /, upstream: app}]
upstreams:
  app:
    active: blue
    pools: {blue: ["blue:3000"], green: ["green:3000"]}
YAML
# `switch` rewrites the file (temporary file + rename): the directory must be
# the image user's.
chown -R 10001:10001 "$TMP/deploy" 2>/dev/null || chmod -R a+rwX "$TMP/deploy"
# Both apps must answer before greenlight resolves and probes them.
for pool in blue green; do
  eventually e exec "$RUN_ID-$pool" greenlight status || fail "app $pool did not start"
done
e run -d --name "$RUN_ID-gl" --network "$NET" -p 127.0.0.1::8080 \
  -v "$TMP/deploy:/etc/greenlight" "$IMAGE" >/dev/null
port=$(host_port "$RUN_ID-gl" 8080)
eventually curl -sf "http://127.0.0.1:$port/" || fail "proxy did not answer ($(e logs "$RUN_ID-gl" 2>&1 | tail -3))"
got=$(curl -s "http://127.0.0.1:$port/")
[ "$got" = blue ] || fail "before the switch: '$got'"
e exec "$RUN_ID-gl" greenlight switch app green --wait --timeout 30s || fail "switch"
got=$(curl -s "http://127.0.0.1:$port/")
[ "$got" = green ] || fail "after the switch: '$got'"
grep -q 'active: green' "$TMP/deploy/greenlight.yaml" || fail "the file still says: $(grep active: "$TMP/deploy/greenlight.yaml")"
echo "ok: blue, switch, green; the mounted file names green"

step "SIGTERM stops it cleanly"
start=$SECONDS
e stop -t 35 "$RUN_ID-gl" >/dev/null
took=$((SECONDS - start))
code=$(e inspect --format '{{.State.ExitCode}}' "$RUN_ID-gl")
[ "$code" = 0 ] || fail "exit code $code after stop ($(e logs "$RUN_ID-gl" 2>&1 | tail -3))"
[ "$took" -lt 30 ] || fail "stop took ${took}s: SIGTERM not handled?"
echo "ok: exit 0 after ${took}s"

echo "container smoke test passed ($ENGINE, $IMAGE)"
