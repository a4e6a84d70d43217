#!/usr/bin/env bash
# redis-server: redis-benchmark (set,get,incr,lpush,lpop; 20000 requests x 20
# clients), 1000 keys written with redis-cli --pipe and read back, a 1 MiB
# binary value set and read back byte-identical. Natively, then server and
# clients all under the shim in each mode.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need redis-server redis-server || exit 0
need redis-tools redis-benchmark || exit 0

BENCH_N=20000
BENCH_TESTS=(SET GET INCR LPUSH LPOP)
NKEYS=1000

# 1000 keys with values of 1..2000 hex digits: the RESP stream for --pipe, the
# GET commands and the expected values.
DATA=$OUT/data
mkdir -p "$DATA"
"$PY" - "$DATA" "$NKEYS" <<'PY'
import os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(4242)
with open(d + "/set.resp", "wb") as s, open(d + "/get.txt", "w") as g, open(d + "/want.txt", "w") as w:
    for i in range(n):
        k = "rskey:%d" % i
        v = rnd.randbytes(rnd.randint(1, 1000)).hex()[: rnd.randint(1, 2000)] or "0"
        args = [b"SET", k.encode(), v.encode()]
        s.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        g.write("GET %s\n" % k)
        w.write(v + "\n")
PY
head -c 1048576 /dev/urandom >"$DATA/big.bin"

for mode in $(run_modes); do
	port=$(free_port) || exit 1
	srv=redis-$mode
	sstats=$OUT/redis-$mode.stats
	cstats=$OUT/redis-$mode.clients.stats
	mkdir -p "$OUT/$srv"
	shim_env "$mode" "$sstats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" \
		redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
		--daemonize no --dir "$OUT/$srv" --logfile '' || continue
	shim_env "$mode" "$cstats"
	cli() { timeout 60 env "${SHIM_ENV[@]}" redis-cli -p "$port" "$@"; }
	requests=0

	# redis-benchmark, preloaded as a client.
	bout=$OUT/bench-$mode.out
	timeout 120 env "${SHIM_ENV[@]}" redis-benchmark -p "$port" -n "$BENCH_N" -c 20 -q \
		-t set,get,incr,lpush,lpop >"$bout" 2>&1
	rc=$?
	tr '\r' '\n' <"$bout" | grep -E '^[A-Z]+: [0-9.]+ requests per second' >"$bout.final"
	absent=
	for t in "${BENCH_TESTS[@]}"; do
		grep -q "^$t: " "$bout.final" || absent+="$t "
	done
	if [ "$rc" = 0 ] && [ -z "$absent" ] && ! grep -qi 'error' "$bout"; then
		ok "[$mode] redis-benchmark -n $BENCH_N -c 20: $(awk '{printf "%s %s/s ", $1, $2}' "$bout.final")"
		requests=$((requests + BENCH_N * ${#BENCH_TESTS[@]}))
	else
		not_ok "[$mode] redis-benchmark failed (exit $rc; missing results: ${absent:-none})" \
			"$(tr '\r' '\n' <"$bout" | grep -v '^ *$' | tail -6)"
	fi

	# 1000 keys through --pipe, read back with GET.
	pout=$OUT/pipe-$mode.out
	cli --pipe <"$DATA/set.resp" >"$pout" 2>&1
	rc=$?
	if [ "$rc" = 0 ] && grep -q "errors: 0, replies: $NKEYS" "$pout"; then
		ok "[$mode] redis-cli --pipe: $NKEYS SETs, 0 errors"
	else
		not_ok "[$mode] redis-cli --pipe of $NKEYS SETs (exit $rc)" "$(tail_of "$pout")"
	fi
	got=$OUT/get-$mode.txt
	cli <"$DATA/get.txt" >"$got" 2>"$got.err"
	rc=$?
	if [ "$rc" = 0 ] && cmp -s "$DATA/want.txt" "$got"; then
		ok "[$mode] $NKEYS GETs return the values written"
	else
		not_ok "[$mode] $NKEYS GETs differ from the values written (exit $rc)" \
			"$(diff "$DATA/want.txt" "$got" | head -6)" "$(tail_of "$got.err" 3)"
	fi
	requests=$((requests + 2 * NKEYS))

	# A 1 MiB binary value.
	big=$OUT/big-$mode.out
	r1=$(cli -x SET bigkey <"$DATA/big.bin" 2>&1)
	r2=$(cli STRLEN bigkey 2>&1)
	cli --raw GET bigkey >"$big" 2>"$big.err"
	if [ "$r1" = OK ] && [ "$r2" = 1048576 ] && [ "$(stat -c %s "$big")" = 1048577 ] &&
		cmp -s -n 1048576 "$DATA/big.bin" "$big"; then
		ok "[$mode] 1 MiB binary value SET/GET byte-identical"
	else
		not_ok "[$mode] 1 MiB binary value: SET=$r1 STRLEN=$r2 GET size=$(stat -c %s "$big") (want 1048576+newline)" \
			"$(cmp "$DATA/big.bin" "$big" 2>&1 | head -2)" "$(tail_of "$big.err" 3)"
	fi
	requests=$((requests + 3))
	info=$(cli INFO stats 2>/dev/null | tr -d '\r' | grep -E '^total_(commands_processed|connections_received):' | tr '\n' ' ')
	note "[$mode] server: $info"

	server_up "$srv" "[$mode]" || continue
	stop_check "$srv" "[$mode]" TERM
	if [ "$mode" != native ]; then
		# Every command is at least one receive by the server, plus replies.
		ring_check "[$mode] redis-server I/O through the ring ($requests requests)" "$sstats" "$requests"
		[ "$mode" = batch ] && acceptq_check "[$mode] redis-server accepts from the accept-ahead queue" "$sstats"
		ring_check "[$mode] client (benchmark, redis-cli) I/O through the ring" "$cstats" "$requests"
	fi
done
exit 0
