#!/usr/bin/env bash
# The docker-compose demo (docker/docker-compose.yml) against a real Docker engine:
# the app and the proxy in two containers, talking over a Unix socket on a named volume.
#
# Runs where no Docker engine runs and the public registry cannot be reached (CI's
# machine): installs Debian's docker.io and docker-compose (v1: Debian 12 has no compose
# v2 plugin) if absent, starts a private dockerd of its own (its own data root, exec
# root, pid file and API socket; nothing under /var/lib/docker, no iptables rules, no
# docker0 bridge), builds a base image from the host's own Node.js and passes it as
# BASE_IMAGE, then: config -q, build, up -d, a request through the proxy answered by the
# app over the socket, the app stopped (502, and the proxy's log line saying why), the app
# started again (200), graceful stops (exit 0), down -v, and the engine stopped by its pid.
#
# If the engine cannot start on this machine at all, prints a loud SKIP line with the
# reason and exits 0. Once it has started, any failure exits non-zero.
#
# Images and the build cache are kept in $SOCKPROXY_E2E_CACHE (default
# ${TMPDIR:-/tmp}/sockproxy-e2e-docker) so that a second run is quicker; delete it to
# free the disk. Everything else is in a temp dir removed at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

started=$SECONDS
say() { printf '[docker-e2e %3ds] %s\n' "$((SECONDS - started))" "$*"; }
fail() {
  say "FAIL: $*"
  exit 1
}

# --- what this needs, installed here: a machine where someone installed docker.io by
# hand must not hide a missing step ---
packages=()
[ -x /usr/sbin/dockerd ] && [ -x /usr/bin/docker ] || packages+=(docker.io)
[ -x /usr/bin/docker-compose ] || packages+=(docker-compose)
[ -x /bin/busybox ] || packages+=(busybox-static) # the base image's shell
command -v curl >/dev/null || packages+=(curl)
if [ "${#packages[@]}" -gt 0 ]; then
  say "installing ${packages[*]}"
  # docker.io's postinst would start the system's dockerd (on /var/lib/docker) where an
  # init system runs; policy-rc.d exit 101 tells invoke-rc.d not to start any service.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  [ -z "$own_policy" ] || rm -f /usr/sbin/policy-rc.d
fi
# Debian's client, which matches its engine (another docker may come first on PATH).
docker=/usr/bin/docker

cache=${SOCKPROXY_E2E_CACHE:-${TMPDIR:-/tmp}/sockproxy-e2e-docker}
mkdir -p "$cache"
# One run at a time per cache: two engines on one data root would corrupt it.
exec 9>"$cache/lock"
flock 9
# Short: the engine's and containerd's sockets live under it, and sun_path holds 107 bytes.
run=$(mktemp -d /tmp/spd.XXXXXX)
export DOCKER_HOST="unix://$run/docker.sock"
# docker-compose builds through the engine's API, not the first docker client on PATH.
export COMPOSE_DOCKER_CLI_BUILD=0
project=sockproxy-e2e
compose=(docker-compose -p "$project" -f docker/docker-compose.yml -f test/docker/compose.e2e.yml)
dockerd_pid=
made_run_docker=

# SIGTERM to the engine, which stops its containerd, whose shims stop their containers,
# before it exits; SIGKILL to both by their pids after 20 s (fails then).
stop_dockerd() {
  kill -0 "$dockerd_pid" 2>/dev/null || return 0
  kill -TERM "$dockerd_pid"
  for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || return 0; sleep 0.2; done
  say "dockerd (pid $dockerd_pid) did not stop in 20 s: killing it and its containerd"
  local containerd_pid
  containerd_pid=$(cat "$run/exec/containerd/containerd.pid" 2>/dev/null)
  kill -KILL "$dockerd_pid"
  [ -z "$containerd_pid" ] || kill -KILL "$containerd_pid"
  return 1
}

cleanup() {
  local status=$?
  set +e # clean up all the same; a step that fails here is reported below
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    if [ "$status" -ne 0 ]; then
      say "--- docker-compose logs ---"
      "${compose[@]}" logs --no-color 2>&1 | tail -n 60 || true
    fi
    "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    # Untagged images a day old: earlier builds' leftovers. Not younger ones: the classic
    # builder's cache for the build stage is an untagged image, and the next run wants it.
    "$docker" image prune -f --filter until=24h >/dev/null 2>&1 || true
    stop_dockerd || status=1
  fi
  if [ "$status" -ne 0 ] && [ -f "$run/dockerd.log" ]; then
    say "--- dockerd log (last 30 lines) ---"
    tail -n 30 "$run/dockerd.log"
  fi
  # dockerd leaves its default network namespace bind-mounted under the exec root.
  for mount in $(grep -oE " $run/[^ ]+" /proc/mounts); do umount "$mount" || status=1; done
  rm -rf "$run" || status=1
  [ -z "$made_run_docker" ] || rmdir /run/docker/plugins /run/docker 2>/dev/null
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT # so that cleanup runs on Ctrl-C and on a CI timeout's SIGTERM too
trap 'exit 143' TERM

# --- a private engine ---
# --iptables=false --ip-forward=false --bridge=none: the host's firewall, forwarding and
# interfaces are left as they were. Compose's own network (a bridge the engine creates and
# down removes) still joins the containers; a published port is relayed by docker-proxy.
# Its own daemon.json: none of the host's settings, and its identity key (by default
# /etc/docker/key.json, settable only there) kept with the data root.
printf '{"deprecated-key-path": "%s"}\n' "$cache/key.json" >"$run/daemon.json"
# The engine makes /run/docker/plugins whatever its flags say: removed again if it was not there.
[ -e /run/docker ] || made_run_docker=1
say "starting dockerd ($(/usr/sbin/dockerd --version))"
/usr/sbin/dockerd \
  --config-file "$run/daemon.json" \
  --data-root "$cache/data-root" \
  --exec-root "$run/exec" \
  --pidfile "$run/dockerd.pid" \
  -H "$DOCKER_HOST" \
  --iptables=false --ip-forward=false --bridge=none \
  >"$run/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 150); do
  "$docker" version >/dev/null 2>&1 && break
  kill -0 "$dockerd_pid" 2>/dev/null || break
  sleep 0.2
done
if ! "$docker" version >/dev/null 2>&1; then
  reason=$(grep -E 'level=(fatal|error)|failed to start' "$run/dockerd.log" | tail -n 3 || true)
  [ -n "$reason" ] || reason=$(tail -n 3 "$run/dockerd.log")
  stop_dockerd || true
  dockerd_pid=
  echo "################################################################################"
  echo "SKIP: test/docker/e2e.sh: the Docker engine cannot start on this machine:"
  echo "${reason:-dockerd did not answer on $DOCKER_HOST within 30 s}" | sed 's/^/SKIP:   /'
  echo "SKIP: the compose demo was NOT tested against a real engine"
  echo "################################################################################"
  exit 0
fi
say "engine up: $("$docker" info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}')"

# --- a base image from the host's own Node.js (node:20-slim cannot be pulled here) ---
# node with the libraries ldd lists, npm, a static busybox for /bin/sh, mkdir and chown,
# uid 1000, and the host's CA bundle and npm settings for npm ci during the build.
node_bin=$(readlink -f "$(command -v node)")
node_version=$(node --version)
base="sockproxy-e2e-base:${node_version#v}-$(sha256sum "$node_bin" | cut -c1-12)"
if "$docker" image inspect "$base" >/dev/null 2>&1; then
  say "base image $base: already built"
else
  say "building base image $base from $node_bin"
  root="$run/base-root"
  mkdir -p "$root"/{bin,usr/bin,usr/lib,etc,tmp,root,home/node}
  chmod 1777 "$root/tmp"
  for file in "$node_bin" $(ldd "$node_bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$file")"
    cp -L "$file" "$root$file"
  done
  [ "$node_bin" = /usr/bin/node ] || ln -s "$node_bin" "$root/usr/bin/node"
  cp /bin/busybox "$root/bin/busybox"
  # Links made here: busybox --install would point them at the host's path to itself.
  for applet in $(/bin/busybox --list); do [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"; done
  ln -s /bin/busybox "$root/usr/bin/env" # the shebang of npm-cli.js
  npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
  cp -a "$npm_dir" "$root/usr/lib/npm"
  ln -s ../lib/npm/bin/npm-cli.js "$root/usr/bin/npm"
  mkdir -p "$root/etc/ssl/certs" "$root/usr/etc"
  cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  [ ! -f /usr/etc/npmrc ] || cp /usr/etc/npmrc "$root/usr/etc/npmrc"
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\n' >"$root/etc/group"
  chown 1000:1000 "$root/home/node"
  tar -C "$root" -c . | "$docker" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' - "$base" >/dev/null
  rm -rf "$root"
fi
if ! "$docker" run --rm --network none "$base" sh -c 'node --version && npm --version' >/dev/null; then
  "$docker" rmi "$base" >/dev/null # not kept for the next run
  fail "the base image $base cannot run node and npm"
fi

# --- the demo, as the README has it ---
export BASE_IMAGE=$base
SOCKPROXY_PORT=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
export SOCKPROXY_PORT
url="http://127.0.0.1:$SOCKPROXY_PORT/"
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true # what a killed run may have left
"${compose[@]}" config -q
t=$SECONDS
say "docker-compose build"
"${compose[@]}" build -q
say "built in $((SECONDS - t)) s"
say "docker-compose up -d (the proxy starts once the app is healthy)"
"${compose[@]}" up -d
container() { "${compose[@]}" ps -q "$1"; }
# The proxy's log so far, into $run/proxy.log for grep: grep -q reading a pipe would stop
# at the first match, and docker-compose's SIGPIPE would fail the pipeline (pipefail).
proxy_log() { "${compose[@]}" logs --no-color proxy >"$run/proxy.log" 2>&1; }

# status BODY_FILE: the status code of a GET $url, the body in BODY_FILE; 000 if none.
status() { curl -sS -o "$1" -w '%{http_code}' --max-time 5 "$url" 2>/dev/null || true; }
# wait_for CODE WHAT: polls until GET $url answers CODE (30 s at most).
wait_for() {
  local code=
  for _ in $(seq 1 150); do
    code=$(status "$run/body")
    [ "$code" = "$1" ] && return 0
    sleep 0.2
  done
  fail "$2: expected $1 from $url, last got ${code:-nothing}: $(head -c 300 "$run/body" 2>/dev/null)"
}
# wait_health SERVICE: polls until the image's HEALTHCHECK says healthy (30 s at most).
wait_health() {
  local health=
  for _ in $(seq 1 60); do
    health=$("$docker" inspect -f '{{.State.Health.Status}}' "$(container "$1")")
    [ "$health" = healthy ] && return 0
    sleep 0.5
  done
  fail "$1's HEALTHCHECK: $health after 30 s"
}

wait_for 200 "the app through the proxy"
grep -q '^Hello from sockproxy sample app (pid ' "$run/body" || fail "unexpected body: $(head -c 300 "$run/body")"
say "GET / -> 200: $(cat "$run/body")"
wait_health app
wait_health proxy
say "both containers healthy"

# The socket as each side sees it: created by the app (uid 1000, --umask 007: 0770), and
# the proxy running as that uid, not root.
stat_js='const s = require("fs").statSync("/run/app/app.sock"); console.log(`${s.isSocket()} ${(s.mode & 0o777).toString(8)} ${s.uid} ${process.getuid()}`)'
for service in app proxy; do
  seen=$("${compose[@]}" exec -T "$service" node -e "$stat_js")
  [ "$seen" = "true 770 1000 1000" ] ||
    fail "$service sees the socket as '$seen' (socket? mode uid, own uid), expected 'true 770 1000 1000'"
done
say "socket: 0770, uid 1000, and both processes run as uid 1000"
# docker/k8s/deployment.yaml's preStop hooks run `sleep N` in these images.
for service in app proxy; do
  "${compose[@]}" exec -T "$service" sleep 0 || fail "no sleep in the $service image, which the k8s preStop hook runs"
done

# The app stops: its socket goes, the proxy answers 502 and logs why, naming the upstream.
"${compose[@]}" stop app >/dev/null 2>&1
app_exit=$("$docker" inspect -f '{{.State.ExitCode}}' "$(container app)")
[ "$app_exit" = 0 ] || fail "the app exited $app_exit on docker stop (SIGTERM), expected 0"
wait_for 502 "the app stopped"
expected='connect() to unix:/run/app/app.sock failed (2: No such file or directory) while connecting to upstream'
for _ in $(seq 1 50); do
  proxy_log
  grep -qF "$expected" "$run/proxy.log" && break
  sleep 0.2
done
grep -qF "$expected" "$run/proxy.log" || fail "no '$expected' in the proxy's log"
say "app stopped (exit 0): GET / -> 502, the proxy logged: $expected"

# The app starts again: 200, with no proxy restart.
"${compose[@]}" start app >/dev/null 2>&1
wait_for 200 "the app started again"
say "app started: GET / -> 200: $(cat "$run/body")"

# docker stop sends the image's STOPSIGNAL (SIGTERM): a graceful stop, exit 0, well inside
# stop_grace_period (a SIGKILL would show as 137).
t=$SECONDS
"${compose[@]}" stop proxy >/dev/null 2>&1
proxy_exit=$("$docker" inspect -f '{{.State.ExitCode}}' "$(container proxy)")
[ "$proxy_exit" = 0 ] || fail "the proxy exited $proxy_exit on docker stop (SIGTERM), expected 0"
proxy_log
signalled=$(grep -F 'SIGTERM received, gracefully shutting down' "$run/proxy.log" | grep -oE '"time":"[^"]+"' | cut -d'"' -f4)
[ -n "$signalled" ] || fail "no 'SIGTERM received, gracefully shutting down' in the proxy's log"
# From the signal to the exit, by the proxy's clock and the engine's: with no request in
# flight the stop ends on its own, well before the 10 s deadline that cuts it short.
stop_ms=$(node -e 'console.log(Date.parse(process.argv[2]) - Date.parse(process.argv[1]))' "$signalled" \
  "$("$docker" inspect -f '{{.State.FinishedAt}}' "$(container proxy)")")
[ "$stop_ms" -lt 10000 ] || fail "the proxy took $stop_ms ms from SIGTERM to exit: its graceful stop did not end by itself"
say "proxy stopped gracefully on SIGTERM (exit 0, $stop_ms ms from the signal to the exit; docker-compose stop took $((SECONDS - t)) s)"

"${compose[@]}" down -v >/dev/null 2>&1
[ -z "$("$docker" ps -aq)" ] || fail "containers left after down -v: $("$docker" ps -a)"
[ -z "$("$docker" volume ls -q)" ] || fail "volumes left after down -v: $("$docker" volume ls -q)"
say "PASS: the compose demo on a real engine ($((SECONDS - started)) s)"
