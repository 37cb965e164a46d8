#!/usr/bin/env bash
# connfs demo: `make demo` runs `tests/demo.sh start`, `make undemo` runs
# `tests/demo.sh stop`.
#
# start  starts the API emulator (tests/emulator) with tests/data/sample.json
#        on a free local port, writes .demo/config with one section per
#        provider pointing at it, mounts ./mnt with ./connfs using the
#        emulator's test credentials, and shows the mount. A previous demo
#        is stopped first, so `start` can be run again at any time.
# stop   unmounts ./mnt, stops the emulator and removes .demo.
#
# Everything lives under the repository: .demo/ (config, logs, pid, port)
# and mnt/. Nothing here touches real provider accounts.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO="$ROOT/.demo"
MNT="$ROOT/mnt"
PY=/usr/bin/python3
BIN="$ROOT/connfs"
PROVIDERS=(eventbridge activecampaign nango persona workato)

say() { printf '%s\n' "$*"; }
die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }

# True when $MNT is a mount point (also when its daemon died and left
# "Transport endpoint is not connected" behind).
mounted() {
	awk -v m="$MNT" '$2 == m { found = 1 } END { exit !found }' \
		/proc/self/mounts
}

# The emulator's pid, if .demo/emulator.pid names a live emulator process.
emulator_pid() {
	local pid cmd
	[ -r "$DEMO/emulator.pid" ] || return 1
	pid=$(cat "$DEMO/emulator.pid")
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	# Guard against a recycled pid: it must still be our emulator.
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ "$cmd" == *"-m emulator"* ]] || return 1
	printf '%s\n' "$pid"
}

stop() {
	local pid i
	if mounted; then
		if ! fusermount3 -u "$MNT" 2>/dev/null; then
			say "demo: $MNT is busy; detaching it lazily"
			fusermount3 -uz "$MNT" ||
				die "cannot unmount $MNT (fusermount3 -u failed)"
		fi
		say "unmounted $MNT"
	fi
	if pid=$(emulator_pid); then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		say "stopped the emulator (pid $pid)"
	fi
	rm -rf "$DEMO"
	if [ -d "$MNT" ] && ! mounted; then
		rmdir "$MNT" 2>/dev/null || true
	fi
}

# On a failed start: shows the last lines of the demo's logs, then cleans
# up so that nothing half-started is left behind.
on_start_exit() {
	local rc=$? f
	trap - EXIT
	[ "$rc" -ne 0 ] || return 0
	set +e
	printf 'demo: the demo did not start (exit status %s)\n' "$rc" >&2
	for f in "$DEMO/emulator.log" "$DEMO/connfs.log" "$DEMO/connfs.out"; do
		if [ -s "$f" ]; then
			printf -- '--- last lines of %s ---\n' "${f#"$ROOT"/}" >&2
			tail -n 20 "$f" >&2
		fi
	done
	stop >/dev/null 2>&1
	exit "$rc"
}

preflight() {
	[ -x "$BIN" ] || die "$BIN is missing: run 'make demo' (or 'make' first)"
	[ -x "$PY" ] || die "$PY is missing: apt-get install python3"
	command -v fusermount3 >/dev/null ||
		die "fusermount3 is missing: apt-get install fuse3"
	[ -c /dev/fuse ] || die "/dev/fuse is missing: FUSE is not available \
here (load the fuse module, or give the container --device /dev/fuse)"
	[ -r "$ROOT/tests/data/sample.json" ] ||
		die "tests/data/sample.json is missing"
}

start_emulator() {
	local i pid
	(
		cd "$ROOT"
		PYTHONPATH="$ROOT/tests" exec "$PY" -m emulator --port 0 \
			--port-file "$DEMO/port" --data tests/data/sample.json
	) </dev/null >"$DEMO/emulator.log" 2>&1 &
	pid=$!
	echo "$pid" >"$DEMO/emulator.pid"
	for ((i = 0; i < 100; i++)); do
		[ -s "$DEMO/port" ] && break
		kill -0 "$pid" 2>/dev/null ||
			die "the emulator exited at start-up"
		sleep 0.1
	done
	[ -s "$DEMO/port" ] || die "the emulator did not report its port in 10 s"
	PORT=$(cat "$DEMO/port")
	[[ "$PORT" =~ ^[0-9]+$ ]] || die "bad port in $DEMO/port: $PORT"
	URL="http://127.0.0.1:$PORT"
}

# The emulator's test credentials, read from tests/emulator/__init__.py
# (CREDENTIALS) as shell assignments rather than copied here.
credentials() {
	PYTHONPATH="$ROOT/tests" "$PY" - <<'EOF'
import shlex
from emulator import CREDENTIALS

aws = CREDENTIALS["eventbridge"]
# A long-term key (no session token); AKIDCONNFSTEST if it exists.
key = "AKIDCONNFSTEST" if "AKIDCONNFSTEST" in aws else \
    next(k for k, (_, token) in aws.items() if token is None)
env = {
    "AWS_ACCESS_KEY_ID": key,
    "AWS_SECRET_ACCESS_KEY": aws[key][0],
    "AWS_REGION": "us-east-1",
    "ACTIVECAMPAIGN_API_TOKEN": CREDENTIALS["activecampaign"],
    "NANGO_SECRET_KEY": CREDENTIALS["nango"],
    "PERSONA_API_KEY": CREDENTIALS["persona"],
    "WORKATO_API_TOKEN": CREDENTIALS["workato"],
}
for name, value in env.items():
    print("export %s=%s" % (name, shlex.quote(value)))
EOF
}

write_config() {
	local p
	(
		umask 077
		{
			say "# connfs demo configuration: every provider points at"
			say "# the local emulator ($URL). Written by tests/demo.sh."
			for p in "${PROVIDERS[@]}"; do
				say ""
				say "[$p]"
				say "url = $URL"
				[ "$p" != eventbridge ] || say "region = us-east-1"
			done
		} >"$DEMO/config"
	)
	chmod 600 "$DEMO/config"
}

mount_connfs() {
	local creds i
	creds=$(credentials) || die "cannot read CREDENTIALS from tests/emulator"
	mkdir -p "$MNT"
	# A subshell keeps the test credentials out of this script's
	# environment; variables that would change how AWS keys are used are
	# dropped. connfs detaches once the mount is up.
	(
		eval "$creds"
		unset AWS_SESSION_TOKEN AWS_SECURITY_TOKEN AWS_PROFILE \
			AWS_DEFAULT_PROFILE
		exec "$BIN" -o "config=$DEMO/config,logfile=$DEMO/connfs.log" \
			"$MNT"
	) </dev/null >"$DEMO/connfs.out" 2>&1 ||
		die "connfs could not mount $MNT: $(cat "$DEMO/connfs.out")"
	for ((i = 0; i < 100; i++)); do
		mounted && return 0
		sleep 0.1
	done
	die "connfs did not mount $MNT within 10 s"
}

show() {
	local d n files f
	cd "$ROOT"
	say ""
	say "connfs is mounted on ./mnt, backed by the emulator at $URL."
	say ""
	say "\$ ls mnt"
	ls mnt
	say ""
	say "\$ ls mnt/*    (files per provider directory)"
	for d in mnt/*/; do
		# Fails (and so ends the demo) when a directory cannot be listed.
		n=$(find "$d" -mindepth 1 -maxdepth 1 -printf . | wc -c)
		printf '  %-16s %3d files\n' "$(basename "$d")" "$n"
	done
	say ""
	say "\$ ls mnt/eventbridge"
	ls mnt/eventbridge
	# One Nango connection, preferably one whose name needs no quoting.
	files=(mnt/nango/*.json)
	[ -e "${files[0]}" ] || die "mnt/nango is empty"
	f=${files[0]}
	for n in "${files[@]}"; do
		if [[ "$n" =~ ^[A-Za-z0-9._~%/-]+$ ]]; then
			f=$n
			break
		fi
	done
	say ""
	if command -v jq >/dev/null; then
		say "\$ cat $(printf '%q' "$f") | jq ."
		jq . <"$f"
	else
		say "\$ cat $(printf '%q' "$f")"
		cat "$f"
	fi
	say ""
	say "\$ grep -rl FAILED_CONNECTIVITY mnt"
	grep -rl FAILED_CONNECTIVITY mnt || say "(no match)"
	n=$(find mnt -type f | wc -l)
	say ""
	say "$n connection files in ${#PROVIDERS[@]} provider directories."
	say "Try: ls -l mnt/*, grep -r, tar czf /tmp/conns.tgz -C . mnt"
	say "Logs: .demo/connfs.log (connfs), .demo/emulator.log (emulator)."
	say "Stop the demo with: make undemo"
}

start() {
	preflight
	if mounted || emulator_pid >/dev/null || [ -e "$DEMO" ]; then
		say "demo: stopping the previous demo first"
		stop >/dev/null
	fi
	mkdir -p "$DEMO"
	trap on_start_exit EXIT
	start_emulator
	write_config
	mount_connfs
	show
	trap - EXIT
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*)
	say "usage: $0 start|stop" >&2
	exit 2
	;;
esac
