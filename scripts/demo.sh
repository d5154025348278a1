#!/usr/bin/env bash
# A local tour of Warren's control plane: starts a coordinator on loopback
# with a throw-away data directory, runs a few admin commands against it,
# then leaves it running until Ctrl-C, which stops it and removes the
# directory. It shows only what exists today: no connector or laptop
# daemon runs yet, so no traffic flows.
#
# WARREN_DEMO_PORT picks the port (default: the first free one from 18443).
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
bin=bin/warren

# say prints a heading, in bold on a terminal.
if [[ -t 1 ]]; then
	say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
else
	say() { printf '\n== %s\n' "$*"; }
fi

# port_busy reports whether something listens on 127.0.0.1:$1.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

say "building $bin"
"$GO" build -o "$bin" ./cmd/warren

if [[ -n "${WARREN_DEMO_PORT:-}" ]]; then
	port=$WARREN_DEMO_PORT
	if port_busy "$port"; then
		echo "demo: 127.0.0.1:$port is in use; pick another with WARREN_DEMO_PORT" >&2
		exit 1
	fi
else
	port=""
	for p in $(seq 18443 18462); do
		if ! port_busy "$p"; then
			port=$p
			break
		fi
	done
	if [[ -z "$port" ]]; then
		echo "demo: ports 18443-18462 on 127.0.0.1 are all in use; pick one with WARREN_DEMO_PORT" >&2
		exit 1
	fi
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/warren-demo.XXXXXX")
data=$tmp/coordinator
log=$tmp/coordinator.log
url=https://127.0.0.1:$port
coord_pid=""

cleanup() {
	trap '' PIPE # a closed stdout must not stop the cleanup
	local stopped=""
	if [[ -n "$coord_pid" ]] && kill -0 "$coord_pid" 2>/dev/null; then
		kill -TERM "$coord_pid" 2>/dev/null || true
		wait "$coord_pid" 2>/dev/null || true
		stopped=1
	fi
	rm -rf "$tmp"
	if [[ -n "$stopped" ]]; then
		echo "demo: coordinator stopped, $tmp removed" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting the coordinator on $url (log: $log)"
echo "+ warren coordinator --listen 127.0.0.1:$port --data $data &"
"$bin" coordinator --listen "127.0.0.1:$port" --data "$data" 2>"$log" &
coord_pid=$!

# Wait up to 10 s for the admin token (written on first start) and the API.
ready=""
for _ in $(seq 100); do
	if ! kill -0 "$coord_pid" 2>/dev/null; then
		echo "demo: the coordinator exited; its log:" >&2
		cat "$log" >&2
		exit 1
	fi
	if [[ -s "$data/admin.token" ]] && port_busy "$port"; then
		if ! command -v curl >/dev/null || curl -ksf "$url/v1/health" >/dev/null; then
			ready=1
			break
		fi
	fi
	sleep 0.1
done
if [[ -z "$ready" ]]; then
	echo "demo: the coordinator did not come up within 10 s; its log:" >&2
	cat "$log" >&2
	exit 1
fi

# run echoes a warren command, then runs it; it must succeed.
run() {
	echo "+ warren $*"
	"$bin" "$@" 2>&1
}

# run_fails echoes a warren command that is expected to fail, runs it, and
# shows its error; a success would mean the demo is out of date.
run_fails() {
	echo "+ warren $*    # expected to fail"
	if "$bin" "$@" 2>&1; then
		echo "demo: that was expected to fail; the tour is out of date" >&2
		exit 1
	fi
}

w=(--data "$data") # on the coordinator host, --data finds admin.token

say "1. a one-time token for a connector named office (the only output is the token)"
run "${w[@]}" token create --role connector --name office

say "2. tokens: the coordinator keeps only a hash of each secret"
run "${w[@]}" token ls

say "3. a route is checked before anything is stored: host bits set"
run_fails "${w[@]}" routes add 192.168.0.1/24 --connector office

say "4. a route needs an enrolled connector; office has a token but has not enrolled"
run_fails "${w[@]}" routes add 192.168.0.0/24 --connector office

say "5. enrolled nodes (none yet: there is no connector or laptop daemon to enroll)"
run "${w[@]}" nodes ls

say "6. which route would carry 192.168.0.10"
run "${w[@]}" routes get 192.168.0.10

say "the coordinator keeps running"
cat <<EOF
  API:          $url (self-signed certificate; its pin rides in every token)
  admin token:  $data/admin.token
  try:          $bin --data $data token ls --json
                WARREN_ADMIN_TOKEN=\$(cat $data/admin.token) $bin nodes ls
  log:          $log

Ctrl-C stops it and removes $tmp.
EOF

set +e
wait "$coord_pid"
status=$?
coord_pid=""
echo "demo: the coordinator exited with status $status; its log:" >&2
tail -n 20 "$log" >&2
exit "$status"
