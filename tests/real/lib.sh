# shellcheck shell=bash
# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034
# Shared helpers for the real-program tests (tests/real/*.sh), sourced by each.
#
# tests/run runs every tests/real/NAME.sh with bash and these variables:
#   RINGSHIM_TEST_PRELOAD  the LD_PRELOAD value (the library, maybe after a sanitizer runtime)
#   RINGSHIM_TEST_LIB      the library
#   RINGSHIM_TEST_BUILD    the build directory (demo apps in $RINGSHIM_TEST_BUILD/demo)
#   RINGSHIM_TEST_MODES    comma list of RINGSHIM_MODE values, e.g. strict,batch
#   RINGSHIM_TEST_OUT      scratch directory for the script (created here)
# A script prints one "ok DESC", "not-ok DESC" or "skip DESC" line per check and
# exits 0 unless something unexpected happened. Everything else it prints is
# shown by tests/run when a check fails (the tail of it), so the details of
# every failure are repeated at the end.
#
# By hand, from the repository root (defaults: build/, strict,batch, /tmp):
#   RINGSHIM_TEST_OUT=/tmp/rt bash tests/real/redis.sh
#
# Servers run in their own session (setsid), so cleanup can stop everything a
# server forked by its process group; they are stopped on exit by PID/PGID
# (TERM, up to 5 s, then KILL). Ports come from 19000-19999, picked at random
# among those with no socket on them.

set -u
set -o pipefail

RT_NAME=$(basename "${BASH_SOURCE[1]:-$0}" .sh)
RT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RT_ROOT=$(cd "$RT_DIR/../.." && pwd)
BUILD=${RINGSHIM_TEST_BUILD:-$RT_ROOT/build}
PRELOAD=${RINGSHIM_TEST_PRELOAD:-$BUILD/libringshim.so}
MODES=${RINGSHIM_TEST_MODES:-strict,batch}
OUT=${RINGSHIM_TEST_OUT:-/tmp/ringshim-real-$RT_NAME.$$}
DEMO=$BUILD/demo
# Debian's interpreter, not whatever python3 comes first in PATH.
PY=/usr/bin/python3
mkdir -p "$OUT" || exit 1
export TMPDIR=$OUT

RT_OK=0 RT_FAIL=0 RT_SKIP=0
RT_FAILURES=$OUT/.failures
: >"$RT_FAILURES"
RT_T0=$SECONDS

# ---- results ------------------------------------------------------------------

ok() { RT_OK=$((RT_OK + 1)); echo "ok $*"; }
skip() { RT_SKIP=$((RT_SKIP + 1)); echo "skip $*"; }
# not_ok DESC [DETAIL...]: the details go to the log before the result line and
# are repeated (first lines) in the summary at exit.
not_ok() {
	local desc=$1
	shift
	RT_FAIL=$((RT_FAIL + 1))
	if [ $# -gt 0 ]; then
		printf '%s\n' "$@" | sed 's/^/    | /'
		{
			echo "FAILED: $desc"
			printf '%s\n' "$@" | head -4 | sed 's/^/    | /'
		} >>"$RT_FAILURES"
	else
		echo "FAILED: $desc" >>"$RT_FAILURES"
	fi
	echo "not-ok $desc"
}
# check COND-EXIT-STATUS DESC [DETAIL...]: ok or not-ok from the status of the
# previous command, e.g. `cmp a b; check $? "same bytes"`. Returns that status.
check() {
	local rc=$1
	shift
	if [ "$rc" = 0 ]; then ok "$1"; else not_ok "$@"; fi
	return "$rc"
}
# Lines of a file, for failure details.
tail_of() { # FILE [N]
	if [ -s "$1" ]; then tail -n "${2:-8}" "$1"; else echo "($1: empty or missing)"; fi
}
note() { echo "# $*"; }

# ---- packages -----------------------------------------------------------------

# need PKG... CMD: make sure the Debian packages are installed and CMD is on the
# PATH. PKG may list alternatives as "a|b" (the first that installs is used).
# Installs when root (apt-get update only after a failed install); otherwise,
# or when the install fails, prints a skip line and returns 1.
need() {
	local cmd=${!#} pkgs=("${@:1:$#-1}") missing=() p alt found
	for p in "${pkgs[@]}"; do
		found=0
		for alt in ${p//|/ }; do
			if dpkg-query -W -f='${Status}' "$alt" 2>/dev/null | grep -q 'ok installed'; then
				found=1
				break
			fi
		done
		[ "$found" = 1 ] || missing+=("$p")
	done
	if [ ${#missing[@]} = 0 ] && command -v "$cmd" >/dev/null 2>&1; then
		return 0
	fi
	[ ${#missing[@]} = 0 ] && missing=("${pkgs[@]}")
	local first=() all=()
	for p in "${missing[@]}"; do
		first+=("${p%%|*}")
		all+=("${p//|/ or }")
	done
	if [ "$(id -u)" != 0 ]; then
		skip "$RT_NAME: missing packages: ${all[*]} (run: sudo apt-get install ${first[*]})"
		return 1
	fi
	note "installing ${missing[*]}"
	local p2 ok_all=1
	for p in "${missing[@]}"; do
		local done_one=0
		for p2 in ${p//|/ }; do
			if rt_apt_install "$p2"; then
				done_one=1
				rt_stop_system_service "$p2"
				break
			fi
		done
		[ "$done_one" = 1 ] || ok_all=0
	done
	if [ "$ok_all" = 1 ] && command -v "$cmd" >/dev/null 2>&1; then
		return 0
	fi
	skip "$RT_NAME: missing packages: ${all[*]} (install failed; run: sudo apt-get install ${first[*]})"
	return 1
}

rt_apt_install() {
	local log=$OUT/apt-$1.log
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >"$log" 2>&1 && return 0
	note "apt-get install $1 failed; retrying after apt-get update"
	DEBIAN_FRONTEND=noninteractive apt-get update >>"$log" 2>&1
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$1" >>"$log" 2>&1
}

# Installing a server package may start it as a system service on its default
# port; stop it again (by its init script, else by the PID in its pid file).
rt_stop_system_service() {
	local svc pidf pid
	case $1 in
	nginx*) svc=nginx ;;
	redis-server) svc=redis-server ;;
	memcached) svc=memcached ;;
	*) return 0 ;;
	esac
	if [ -x "/etc/init.d/$svc" ]; then
		service "$svc" stop >/dev/null 2>&1 || true
	fi
	for pidf in "/run/$svc.pid" "/run/${svc%-server}/$svc.pid" "/run/$svc/$svc.pid"; do
		[ -f "$pidf" ] || continue
		pid=$(cat "$pidf" 2>/dev/null)
		if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
			note "stopping the system $svc service (pid $pid)"
			kill "$pid" 2>/dev/null || true
		fi
	done
}

# ---- processes ----------------------------------------------------------------

declare -A RT_PIDS=() # processes started in the background and not yet reaped
declare -A SRV_PID=() SRV_LOG=()
STOP_RC=             # exit status of the last stop_server

# The run's environment: native (no preload) or the shim in MODE, counters to
# STATS. Sets the array SHIM_ENV, to be passed to env or start_server.
shim_env() { # MODE STATSFILE
	if [ "$1" = native ]; then
		SHIM_ENV=()
	else
		rm -f "$2"
		SHIM_ENV=("LD_PRELOAD=$PRELOAD" "RINGSHIM_MODE=$1" "RINGSHIM_STATS=$2")
	fi
}

# The modes of a run: native first, then RINGSHIM_TEST_MODES.
run_modes() { echo native "${MODES//,/ }"; }

# Alive and not a zombie.
alive() {
	local st
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Wait until PID has exited (zombie or gone), up to SECS; 1 on timeout.
wait_gone() { # PID SECS
	local end=$((SECONDS + $2))
	while alive "$1"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.05
	done
	return 0
}

# Any process left in the process group PGID?
group_alive() {
	local p
	for p in $(pgrep -g "$1" 2>/dev/null); do
		alive "$p" && return 0
	done
	return 1
}

# Stop one of our processes and everything in its process group (if it leads
# one): TERM, up to 5 s, then KILL; reaps it.
rt_kill_pid() {
	local pid=$1 end members=()
	mapfile -t members < <(pgrep -g "$pid" 2>/dev/null)
	if [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$pid" ] || group_alive "$pid"; then
		kill -TERM -- "-$pid" 2>/dev/null
		end=$((SECONDS + 5))
		while group_alive "$pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
		group_alive "$pid" && kill -KILL -- "-$pid" 2>/dev/null
	elif alive "$pid"; then
		kill -TERM "$pid" 2>/dev/null
		wait_gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	rt_shm_cleanup "cleanup" "$pid" "${members[@]}"
}

# Remember a background process for cleanup / forget it once reaped (so a
# reused PID is never signalled).
rt_track() { RT_PIDS[$1]=1; }
rt_reaped() { unset "RT_PIDS[$1]"; }

rt_cleanup() {
	local pid
	trap - EXIT INT TERM
	for pid in "${!RT_PIDS[@]}"; do
		rt_kill_pid "$pid"
	done
	rt_summary
}
trap rt_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rt_summary() {
	echo "# $RT_NAME: $RT_OK ok, $RT_FAIL not-ok, $RT_SKIP skipped in $((SECONDS - RT_T0)) s (files in $OUT)"
	if [ -s "$RT_FAILURES" ]; then
		echo "# failure details:"
		cat "$RT_FAILURES"
	fi
}

# A port in 19000-19999 with no socket on it (listening or not).
free_port() {
	local i p
	for i in $(seq 1 500); do
		p=$((19000 + (RANDOM * 32768 + RANDOM) % 1000))
		: "$i"
		if [ -z "$(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null)" ]; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port in 19000-19999" >&2
	return 1
}

port_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Is PORT's listener one of the processes of session SID (if ss can tell)?
port_is_ours() { # PORT SID
	local line p
	line=$(ss -Hltnp "( sport = :$1 )" 2>/dev/null)
	[[ $line == *pid=* ]] || return 0
	for p in $(pgrep -s "$2" 2>/dev/null); do
		[[ $line == *"pid=$p,"* ]] && return 0
	done
	return 1
}

# start_server NAME PORT [VAR=VALUE...] CMD [ARG...]: run CMD in the background
# in a new session with the given environment (SIGINT/SIGQUIT at their
# defaults, which bash would otherwise leave ignored), stdout+stderr to
# $OUT/NAME.log; wait up to 20 s until PORT answers. On failure prints a
# not-ok line with the log's tail and returns 1.
start_server() {
	local name=$1 port=$2 pid end
	shift 2
	local log=$OUT/$name.log
	setsid env --default-signal=INT,QUIT "$@" >"$log" 2>&1 </dev/null &
	pid=$!
	rt_track "$pid"
	SRV_PID[$name]=$pid SRV_LOG[$name]=$log
	end=$((SECONDS + 20))
	while :; do
		if ! alive "$pid"; then
			wait "$pid"
			not_ok "$name: server exited during startup (status $?)" "$(tail_of "$log")"
			rt_reaped "$pid"
			return 1
		fi
		if port_answers "$port"; then
			if ! port_is_ours "$port" "$pid"; then
				not_ok "$name: port $port is answered by another process" "$(ss -Hltnp "( sport = :$port )")"
				stop_server "$name" TERM 5 >/dev/null
				return 1
			fi
			note "$name: pid $pid listening on 127.0.0.1:$port"
			return 0
		fi
		if [ "$SECONDS" -ge "$end" ]; then
			not_ok "$name: port $port did not answer within 20 s" "$(tail_of "$log")"
			stop_server "$name" TERM 5 >/dev/null
			return 1
		fi
		sleep 0.1
	done
}

# server_up NAME DESC: ok if the server is still running, else not-ok with its
# exit status and log tail. Returns 1 if it is gone.
server_up() {
	local pid=${SRV_PID[$1]}
	if alive "$pid"; then
		return 0
	fi
	wait "$pid" 2>/dev/null
	not_ok "$2: server $1 (pid $pid) died (status $?)" "$(tail_of "${SRV_LOG[$1]}")"
	return 1
}

# stop_server NAME [SIGNAL [SECS]]: signal the server (default TERM), wait up to
# SECS (default 10) for it and then for the rest of its process group to exit;
# KILL after that. Sets STOP_RC to its exit status ("timeout" if it had to be
# killed, "gone" if it was not running). Returns 0 on a clean exit in time.
stop_server() {
	local name=$1 sig=${2:-TERM} secs=${3:-10} pid=${SRV_PID[$1]} members=()
	mapfile -t members < <(pgrep -g "$pid" 2>/dev/null)
	if ! alive "$pid"; then
		wait "$pid" 2>/dev/null
		STOP_RC=gone
	else
		kill -s "$sig" "$pid"
		if wait_gone "$pid" "$secs"; then
			wait "$pid"
			STOP_RC=$?
		else
			note "$name: pid $pid still running $secs s after SIG$sig; killing"
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
			wait "$pid" 2>/dev/null
			STOP_RC=timeout
		fi
	fi
	local end=$((SECONDS + 5))
	while group_alive "$pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
	if group_alive "$pid"; then
		note "$name: processes left in its group after it exited: $(pgrep -g "$pid" | tr '\n' ' ')"
		kill -KILL -- "-$pid" 2>/dev/null
		[ "$STOP_RC" = 0 ] && STOP_RC=leftover
		end=$((SECONDS + 5))
		while group_alive "$pid" && [ "$SECONDS" -lt "$end" ]; do sleep 0.1; done
	fi
	rt_reaped "$pid"
	rt_shm_cleanup "$name" "$pid" "${members[@]}"
	[ "$STOP_RC" = 0 ]
}

# The library keeps each process's counters in /dev/shm/ringshim.PID and
# removes it at a normal exit; a process that was killed or left with _exit()
# leaves it behind. Remove those of our (gone) processes, and say so.
rt_shm_cleanup() { # NAME PID...
	local name=$1 p left=
	shift
	for p in "$@"; do
		if [ -e "/dev/shm/ringshim.$p" ] && [ ! -d "/proc/$p" ]; then
			rm -f "/dev/shm/ringshim.$p"
			left+="$p "
		fi
	done
	[ -z "$left" ] || note "$name: removed /dev/shm/ringshim.PID left by exited processes: $left"
}

# stop_check NAME DESC [SIGNAL [SECS]]: stop_server and report the exit;
# returns 0 if it was clean.
stop_check() {
	local name=$1 desc=$2
	shift 2
	stop_server "$name" "$@"
	check $? "$desc: $name stopped cleanly" "$name exit: $STOP_RC" "$(tail_of "${SRV_LOG[$name]}")"
}

# ---- counters -----------------------------------------------------------------

# stat_sum FILE COUNTER [PPID]: sum of COUNTER over the JSON lines of FILE (one
# per process; only those whose ppid is PPID if given); -1 if FILE is missing.
# COUNTER "lines" counts the lines, "served" is served_ring + served_stash +
# served_writebehind + served_acceptq.
stat_sum() {
	"$PY" - "$@" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
ppid = int(sys.argv[3]) if len(sys.argv) > 3 else None
served = ("served_ring", "served_stash", "served_writebehind", "served_acceptq")
total = 0
try:
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            d = json.loads(line)
            if ppid is not None and d.get("ppid") != ppid:
                continue
            c = d["counters"]
            if name == "lines":
                total += 1
            elif name == "served":
                total += sum(c.get(k, 0) for k in served)
            else:
                total += c.get(name, 0)
except FileNotFoundError:
    total = -1
print(total)
PY
}

# One line describing the counters of a stats file.
stat_brief() { # FILE
	"$PY" - "$1" <<'PY'
import json, sys
keys = ("calls", "passthrough", "served_ring", "served_stash", "served_writebehind",
        "served_acceptq", "enter", "sqes", "wb_bytes", "stash_bytes_in", "rings_created")
tot = dict.fromkeys(keys, 0)
n = 0
progs = set()
try:
    for line in open(sys.argv[1]):
        if line.strip():
            d = json.loads(line)
            n += 1
            progs.add(d.get("prog", "?"))
            for k in keys:
                tot[k] += d["counters"].get(k, 0)
except FileNotFoundError:
    print("no stats file")
    sys.exit(0)
print("lines=%d (%s) " % (n, ",".join(sorted(progs))) +
      " ".join("%s=%d" % (k.replace("served_", ""), v) for k, v in tot.items()))
PY
}

# ring_check DESC FILE FLOOR: ok if the stats in FILE show more than FLOOR
# calls served through the ring (ring + stash + write-behind + accept queue)
# and at least one io_uring enter; not-ok with the numbers otherwise.
ring_check() {
	local desc=$1 file=$2 floor=$3 served enter brief
	served=$(stat_sum "$file" served)
	enter=$(stat_sum "$file" enter)
	brief=$(stat_brief "$file")
	if [ "$served" = -1 ]; then
		not_ok "$desc: no stats written to $file (they are written at a normal exit)"
	elif [ "$served" -gt "$floor" ] && [ "$enter" -gt 0 ]; then
		ok "$desc: served=$served>$floor enter=$enter [$brief]"
	else
		not_ok "$desc: expected served>$floor and enter>0, got served=$served enter=$enter" "$brief"
	fi
}

# acceptq_check DESC FILE: batch mode accepts ahead for a listener in an epoll
# set (docs/semantics.md, "Completion-based accept"); ok if some accept()
# was served from those queued connections. Only for single-process servers:
# a listener shared with forked workers is another matter.
acceptq_check() {
	local desc=$1 file=$2 q queued calls
	q=$(stat_sum "$file" served_acceptq)
	queued=$(stat_sum "$file" accept_queued)
	calls=$(stat_sum "$file" call_accept)
	if [ "$q" = -1 ]; then
		not_ok "$desc: no stats written to $file"
	elif [ "$q" -gt 0 ]; then
		ok "$desc: served_acceptq=$q of call_accept=$calls"
	else
		not_ok "$desc: expected served_acceptq>0, got served_acceptq=$q accept_queued=$queued call_accept=$calls"
	fi
}

# ---- files --------------------------------------------------------------------

# make_files DIR: 0 B, 1 KiB, 1 MiB and 10 MiB of random bytes, with
# DIR/SHA256SUMS. FILES lists their names.
FILES=(empty.bin 1k.bin 1m.bin 10m.bin)
make_files() {
	mkdir -p "$1"
	: >"$1/empty.bin"
	head -c 1024 /dev/urandom >"$1/1k.bin"
	head -c 1048576 /dev/urandom >"$1/1m.bin"
	head -c 10485760 /dev/urandom >"$1/10m.bin"
	(cd "$1" && sha256sum "${FILES[@]}" >SHA256SUMS)
}

# sums_check DESC WANT_SUMS DIR: compare the checksums of the files in DIR.
sums_check() {
	local desc=$1 want=$2 dir=$3 diffout
	if diffout=$(cd "$dir" && sha256sum -c --quiet "$want" 2>&1); then
		ok "$desc"
	else
		not_ok "$desc: checksum mismatch" "$diffout" "$(cd "$dir" && ls -l)"
	fi
}

# Tools the helpers above use (ss for ports, pgrep/ps for process groups).
need iproute2 ss || exit 0
need procps pgrep || exit 0

# ---- HTTP ---------------------------------------------------------------------

# http_fetch_all TAG PORT DIR: GET the four FILES on one keep-alive connection
# with curl (run with SHIM_ENV); check their sums and that curl connected once.
http_fetch_all() {
	local tag=$1 port=$2 dl=$3 urls=() f conns
	rm -rf "$dl"
	mkdir -p "$dl"
	for f in "${FILES[@]}"; do urls+=("http://127.0.0.1:$port/$f" -o "$dl/$f"); done
	if ! conns=$(timeout 90 env "${SHIM_ENV[@]}" curl -sS --fail --max-time 60 \
		-w '%{num_connects}\n' "${urls[@]}" 2>>"$OUT/curl.err"); then
		not_ok "$tag curl keep-alive fetch failed" "$(tail_of "$OUT/curl.err")"
		return 1
	fi
	sums_check "$tag sha256 of the 4 files on one connection" "$WWW/SHA256SUMS" "$dl"
	conns=$(echo "$conns" | awk '{s += $1} END {print s}')
	check "$([ "$conns" = 1 ]; echo $?)" "$tag keep-alive: 4 requests on 1 connection" \
		"curl reported $conns connects for 4 URLs"
}

# http_burst TAG PORT SECS: 50 concurrent connections on /1k.bin for SECS s with
# wrk (native), or without wrk 50 curls (with SHIM_ENV) of 10 requests each.
# Sets BURST_N to the number of requests done (0 on failure).
http_burst() {
	local tag=$1 port=$2 secs=$3 out=$OUT/burst.out rc
	BURST_N=0
	if command -v wrk >/dev/null 2>&1; then
		timeout 60 wrk -t 2 -c 50 -d "$secs" "http://127.0.0.1:$port/1k.bin" >"$out" 2>&1
		rc=$?
		local n
		n=$(awk '/requests in/ {print $1}' "$out")
		if [ "$rc" != 0 ] || [ -z "$n" ] || [ "$n" -lt 50 ] ||
			grep -qE 'Socket errors|Non-2xx' "$out"; then
			not_ok "$tag wrk -c 50 -d $secs reported errors (exit $rc)" "$(cat "$out")"
		else
			ok "$tag wrk -c 50 -d $secs: $n requests, no errors"
			BURST_N=$n
		fi
	else
		local pids=() i failed=0 urls=()
		for i in $(seq 10); do urls+=("http://127.0.0.1:$port/1k.bin" -o /dev/null); done
		: >"$out"
		for i in $(seq 50); do
			timeout 90 env "${SHIM_ENV[@]}" curl -sS --fail --max-time 60 "${urls[@]}" 2>>"$out" &
			pids+=($!)
			rt_track $!
		done
		for i in "${pids[@]}"; do
			wait "$i" || failed=$((failed + 1))
			rt_reaped "$i"
		done
		if check "$failed" "$tag 50 concurrent curls x 10 requests, none failed" \
			"$failed curls failed" "$(tail_of "$out")"; then
			BURST_N=500
		fi
	fi
}
