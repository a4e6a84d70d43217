#!/usr/bin/env bash
# `ringshim stat` against a live preloaded server: the epoll echo server in
# each shim mode under rs-loadgen; `ringshim stat PID --watch 1 --json` must
# show the load as it happens (call and served rates above zero, totals
# rising sample after sample), the listing must name the process, and the
# segment must be gone once the server has exited.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

STAT="$RT_ROOT/scripts/ringshim stat"
for b in rs-echo-epoll rs-loadgen; do
	if [ ! -x "$DEMO/$b" ]; then
		not_ok "demo app $DEMO/$b is missing (make demo-apps)"
		exit 0
	fi
done

for mode in ${MODES//,/ }; do
	tag="[$mode rs-echo-epoll]"
	srv=echo-$mode
	port=$(free_port) || exit 1
	shim_env "$mode" "$OUT/$srv.stats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" "$DEMO/rs-echo-epoll" -p "$port" || continue
	pid=${SRV_PID[$srv]}
	"$DEMO/rs-loadgen" -p "$port" -c 20 -s 128 -t 7 >"$OUT/$srv.load" 2>&1 &
	lg=$!
	sleep 1
	timeout 5 $STAT "$pid" --watch 1 --json >"$OUT/$srv.watch" 2>"$OUT/$srv.watch.err"
	$STAT >"$OUT/$srv.list" 2>&1
	wait "$lg"
	lrc=$?
	check "$lrc" "$tag load generator verified every byte" "$(tail_of "$OUT/$srv.load")"
	verdict=$($PY - "$OUT/$srv.watch" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
if len(rows) < 2:
    print("only %d samples" % len(rows)); sys.exit()
busy = [r for r in rows if r["rates"]["calls"] > 100 and r["rate_derived"]["served"] > 100]
if not busy:
    print("no sample with calls/s and served/s above 100: %s" %
          [(r["rates"]["calls"], r["rate_derived"]["served"]) for r in rows]); sys.exit()
totals = [r["counters"]["calls"] for r in rows]
if any(b <= a for a, b in zip(totals, totals[1:])):
    print("call totals not rising: %s" % totals); sys.exit()
print("ok %d samples, calls/s up to %.0f" % (len(rows), max(r["rates"]["calls"] for r in rows)))
PY
)
	check "$([ "${verdict%% *}" = ok ]; echo $?)" "$tag stat --watch shows the load live ($verdict)" \
		"$(tail_of "$OUT/$srv.watch.err")"
	check "$(grep -q "^ *$pid .*rs-echo-epoll" "$OUT/$srv.list"; echo $?)" \
		"$tag stat lists the process" "$(cat "$OUT/$srv.list")"
	stop_server "$srv" TERM 5 >/dev/null
	check "$([ ! -e "/dev/shm/ringshim.$pid" ]; echo $?)" "$tag segment removed at exit"
done
exit 0
