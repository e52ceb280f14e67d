#!/usr/bin/env bash
# Starts/stops the bench suite's fixed-latency nginx server in a work directory of the caller's.
#   serve.sh start <workdir>   writes <workdir>/nginx.conf, starts nginx, prints http://127.0.0.1:PORT
#   serve.sh stop <workdir>    stops that nginx and waits until it has exited
# Environment: NGINX (the binary), NGINX_ECHO_MODULE (path of ngx_http_echo_module.so).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

die() {
  echo "serve.sh: $*" >&2
  exit 1
}

find_nginx() {
  if [[ -n "${NGINX:-}" ]]; then
    echo "$NGINX"
  elif command -v nginx >/dev/null 2>&1; then
    command -v nginx
  elif [[ -x /usr/sbin/nginx ]]; then  # not on a non-root user's PATH on Debian
    echo /usr/sbin/nginx
  else
    die "nginx not found (set NGINX)"
  fi
}

find_echo_module() {
  local m
  for m in "${NGINX_ECHO_MODULE:-}" /usr/lib/nginx/modules/ngx_http_echo_module.so \
    /usr/lib64/nginx/modules/ngx_http_echo_module.so /usr/local/nginx/modules/ngx_http_echo_module.so; do
    if [[ -n "$m" && -f "$m" ]]; then
      echo "$m"
      return
    fi
  done
  die "ngx_http_echo_module.so not found (install libnginx-mod-http-echo or set NGINX_ECHO_MODULE)"
}

# True when something listens on 127.0.0.1:$1 or on any address at that port (IPv4 and IPv6).
port_in_use() {
  local hex
  hex="$(printf '%04X' "$1")"
  # /proc/net/tcp*: "sl local_address rem_address st ...", state 0A = LISTEN.
  awk -v p=":$hex" 'NR > 1 && $4 == "0A" && substr($2, length($2) - 4) == p { found = 1 }
    END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# A port below the kernel's ephemeral range, so the client's 10,000 outgoing connections never
# compete with it.
pick_port() {
  local low=20000 high=32000 p eph_low
  if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
    read -r eph_low _ </proc/sys/net/ipv4/ip_local_port_range
    if ((eph_low > 11000)); then high=$((eph_low - 1)); low=$((high - 10000)); fi
  fi
  for _ in $(seq 1 100); do
    p=$((low + (RANDOM * 32768 + RANDOM) % (high - low)))
    if ! port_in_use "$p"; then
      echo "$p"
      return
    fi
  done
  die "no free port found"
}

# Waits until the daemon has written its pid file and accepts on port $2, up to ~5 s.
wait_ready() {
  local workdir="$1" port="$2"
  for _ in $(seq 1 100); do
    if [[ -s "$workdir/nginx.pid" ]] && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  return 1
}

start() {
  local workdir="$1" nginx module nofile port user_line
  nginx="$(find_nginx)"
  module="$(find_echo_module)"
  mkdir -p "$workdir"
  workdir="$(cd "$workdir" && pwd)"
  if [[ -f "$workdir/nginx.pid" ]] && kill -0 "$(cat "$workdir/nginx.pid")" 2>/dev/null; then
    die "already running in $workdir (pid $(cat "$workdir/nginx.pid"))"
  fi
  mkdir -p "$workdir/logs" "$workdir/tmp"

  # 10,000 client connections need 10,000+ descriptors in the worker.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  nofile="$(ulimit -n)"
  if [[ "$nofile" == unlimited ]]; then nofile=1048576; fi
  local conns=20000
  if ((nofile < conns + 100)); then conns=$((nofile - 100)); fi
  if ((conns < 10100)); then
    echo "serve.sh: warning: open-file limit $nofile allows only $conns connections" >&2
  fi

  # As root the workers would otherwise run as "nobody", which cannot use a work directory
  # owned by root; as another user nginx keeps that user and the directive must be absent.
  user_line=""
  if [[ "$(id -u)" == 0 ]]; then user_line="user root;"; fi

  for _ in 1 2 3 4 5; do
    port="$(pick_port)"
    sed -e "s|@WORKDIR@|$workdir|g" -e "s|@PORT@|$port|g" -e "s|@NOFILE@|$nofile|g" \
      -e "s|@WORKER_CONNECTIONS@|$conns|g" -e "s|@ECHO_MODULE@|$module|g" \
      -e "s|@USER_LINE@|$user_line|g" "$here/nginx.conf.in" >"$workdir/nginx.conf"
    # -e: the error log before the config is read (the packaged default is /var/log/nginx).
    if "$nginx" -p "$workdir" -e "$workdir/logs/error.log" -c "$workdir/nginx.conf" \
      2>>"$workdir/logs/start.log"; then
      if wait_ready "$workdir" "$port"; then
        echo "$port" >"$workdir/port"
        echo "http://127.0.0.1:$port"
        return 0
      fi
      stop "$workdir"
      die "nginx started but does not answer on port $port (see $workdir/logs/)"
    fi
    # Lost a race for the port: try another one; anything else is fatal.
    if ! grep -q "Address already in use" "$workdir/logs/start.log"; then
      cat "$workdir/logs/start.log" >&2
      die "nginx failed to start (config $workdir/nginx.conf)"
    fi
    : >"$workdir/logs/start.log"
  done
  die "no free port after 5 attempts"
}

stop() {
  local workdir="$1" pid
  [[ -f "$workdir/nginx.pid" ]] || return 0
  pid="$(cat "$workdir/nginx.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"  # fast shutdown: in-flight sleeps are cut short
    for _ in $(seq 1 200); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "serve.sh: nginx $pid did not exit in 10 s, killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$workdir/nginx.pid" "$workdir/port"
}

case "${1:-}" in
  start) [[ $# == 2 ]] || die "usage: serve.sh start <workdir>"; start "$2" ;;
  stop) [[ $# == 2 ]] || die "usage: serve.sh stop <workdir>"; stop "$2" ;;
  *) die "usage: serve.sh start|stop <workdir>" ;;
esac
