#!/usr/bin/env bash
# redis replication on loopback (issue 4): a primary and a replica, both
# under the shim in each mode (and natively first).
#  - 2000 keys are written to the primary before the replica starts, so the
#    replica's first sync is a full one: with repl-diskless-sync the primary
#    forks a child that streams the RDB straight into the replica's socket;
#  - 2000 more keys, a 1 MiB binary value and 500 INCRs are written once the
#    link is up, so they reach the replica through the command stream;
#  - the replica must reach the primary's replication offset, and every key
#    read back from the replica must equal what was written.
# Both servers' counters must show their I/O went through the ring.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need redis-server redis-server || exit 0
need redis-tools redis-cli || exit 0

NKEYS=2000
DATA=$OUT/data
mkdir -p "$DATA"
# Two batches of SETs (before and after the sync), the GETs for all keys and
# the values expected back, one per line.
"$PY" - "$DATA" "$NKEYS" <<'PY'
import random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(7171)
def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
with open(d + "/set1.resp", "wb") as s1, open(d + "/set2.resp", "wb") as s2, \
        open(d + "/get.txt", "w") as g, open(d + "/want.txt", "w") as w:
    for i in range(2 * n):
        k = "repl:%d" % i
        v = rnd.randbytes(rnd.randint(1, 1500)).hex() or "0"
        (s1 if i < n else s2).write(resp(b"SET", k.encode(), v.encode()))
        g.write("GET %s\n" % k)
        w.write(v + "\n")
PY
head -c 1048576 /dev/urandom >"$DATA/big.bin"
for i in $(seq 1 500); do echo "INCR repl:counter"; done >"$DATA/incr.txt"

# INFO replication of a server (CLI...), and one field of it.
repl_info() { "$@" INFO replication 2>/dev/null | tr -d '\r'; }
field() { sed -n "s/^$1://p" <<<"$2"; }

for mode in $(run_modes); do
	pport=$(free_port) || exit 1
	rport=$(free_port) || exit 1
	[ "$rport" = "$pport" ] && { rport=$(free_port) || exit 1; }
	psrv=redis-primary-$mode rsrv=redis-replica-$mode
	pstats=$OUT/$psrv.stats rstats=$OUT/$rsrv.stats cstats=$OUT/cli-$mode.stats
	mkdir -p "$OUT/$psrv" "$OUT/$rsrv"

	shim_env "$mode" "$pstats"
	start_server "$psrv" "$pport" "${SHIM_ENV[@]}" redis-server --port "$pport" --bind 127.0.0.1 \
		--save '' --appendonly no --daemonize no --dir "$OUT/$psrv" --logfile '' \
		--repl-diskless-sync yes --repl-diskless-sync-delay 0 || continue
	shim_env "$mode" "$cstats"
	pcli=(timeout 60 env "${SHIM_ENV[@]}" redis-cli -p "$pport")
	rcli=(timeout 60 env "${SHIM_ENV[@]}" redis-cli -p "$rport")

	"${pcli[@]}" --pipe <"$DATA/set1.resp" >"$OUT/pipe1-$mode.out" 2>&1
	grep -q "errors: 0, replies: $NKEYS" "$OUT/pipe1-$mode.out"
	check $? "[$mode] redis primary: $NKEYS keys written before the replica starts" \
		"$(tail_of "$OUT/pipe1-$mode.out")" || { stop_server "$psrv"; continue; }

	shim_env "$mode" "$rstats"
	start_server "$rsrv" "$rport" "${SHIM_ENV[@]}" redis-server --port "$rport" --bind 127.0.0.1 \
		--save '' --appendonly no --daemonize no --dir "$OUT/$rsrv" --logfile '' \
		--replicaof 127.0.0.1 "$pport" || { stop_server "$psrv"; continue; }

	# The full sync: wait for the link.
	end=$((SECONDS + 30)) rinfo=
	while [ "$SECONDS" -lt "$end" ]; do
		rinfo=$(repl_info "${rcli[@]}")
		[ "$(field master_link_status "$rinfo")" = up ] &&
			[ "$(field master_sync_in_progress "$rinfo")" = 0 ] && break
		sleep 0.1
	done
	[ "$(field master_link_status "$rinfo")" = up ]
	check $? "[$mode] redis replica: full sync from the primary (diskless, forked child)" \
		"$rinfo" "$(tail_of "${SRV_LOG[$rsrv]}")" "$(tail_of "${SRV_LOG[$psrv]}")" ||
		{ stop_server "$rsrv"; stop_server "$psrv"; continue; }

	# The command stream: more keys, a big value, INCRs.
	"${pcli[@]}" --pipe <"$DATA/set2.resp" >"$OUT/pipe2-$mode.out" 2>&1
	grep -q "errors: 0, replies: $NKEYS" "$OUT/pipe2-$mode.out"
	check $? "[$mode] redis primary: $NKEYS keys written while replicating" "$(tail_of "$OUT/pipe2-$mode.out")"
	"${pcli[@]}" -x SET repl:big <"$DATA/big.bin" >"$OUT/big-$mode.out" 2>&1
	"${pcli[@]}" <"$DATA/incr.txt" >/dev/null 2>&1

	end=$((SECONDS + 30)) pinfo=
	while [ "$SECONDS" -lt "$end" ]; do
		pinfo=$(repl_info "${pcli[@]}")
		rinfo=$(repl_info "${rcli[@]}")
		poff=$(field master_repl_offset "$pinfo")
		roff=$(field slave_repl_offset "$rinfo")
		[ -n "$poff" ] && [ "$poff" = "$roff" ] && break
		sleep 0.1
	done
	[ -n "$poff" ] && [ "$poff" = "$roff" ]
	check $? "[$mode] redis replica: caught up with the primary (offset $poff)" \
		"primary offset '$poff', replica offset '$roff'" "$rinfo"

	# Everything read back from the replica.
	"${rcli[@]}" <"$DATA/get.txt" >"$OUT/got-$mode.txt" 2>&1
	cmp -s "$DATA/want.txt" "$OUT/got-$mode.txt"
	check $? "[$mode] redis replica: all $((2 * NKEYS)) values read back equal" \
		"$(diff "$DATA/want.txt" "$OUT/got-$mode.txt" | head -4)"
	"${rcli[@]}" GET repl:big 2>/dev/null | head -c 1048576 >"$OUT/big-$mode.bin"
	cmp -s "$DATA/big.bin" "$OUT/big-$mode.bin"
	check $? "[$mode] redis replica: the 1 MiB binary value is byte-identical" \
		"$(cmp "$DATA/big.bin" "$OUT/big-$mode.bin" 2>&1)"
	c=$("${rcli[@]}" GET repl:counter 2>&1)
	check "$([ "$c" = 500 ]; echo $?)" "[$mode] redis replica: the counter is 500" "got '$c'"

	server_up "$rsrv" "[$mode] redis replica" && stop_check "$rsrv" "[$mode] redis replica" TERM
	server_up "$psrv" "[$mode] redis primary" && stop_check "$psrv" "[$mode] redis primary" TERM
	if [ "$mode" != native ]; then
		ring_check "[$mode] redis primary (and its sync child) through the ring" "$pstats" 200
		ring_check "[$mode] redis replica through the ring" "$rstats" 200
	fi
done
exit 0
