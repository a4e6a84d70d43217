#!/usr/bin/env bash
# The project's demo servers ($RINGSHIM_TEST_BUILD/demo) under the shim, each
# mode, driven natively: the echo servers by rs-loadgen (which verifies every
# echoed byte and exits 1 on any error), rs-httpd by curl (checksums of the 4
# files on one keep-alive connection) and a 50-connection burst. Each server
# also runs once natively with a shorter load.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need curl curl || exit 0
LOADGEN=$DEMO/rs-loadgen
for b in rs-echo-epoll rs-echo-threads rs-legacy rs-httpd rs-prefork rs-loadgen; do
	if [ ! -x "$DEMO/$b" ]; then
		not_ok "demo app $DEMO/$b is missing (make demo-apps)"
		exit 0
	fi
done
WWW=$OUT/www
make_files "$WWW"

# name | server and arguments (-p PORT added) | rs-loadgen arguments
# (the thread-per-connection servers get 500 concurrent connections: far
# past the default RINGSHIM_MAX_RINGS of 64, so most connection threads have
# no ring and pass through, or borrow the lending ring for fds with shim
# state; tests/integ/mt_maxrings checks the details)
ECHO_SERVERS=(
	"echo-epoll|rs-echo-epoll|-c 100 -s 128"
	"echo-epoll-et|rs-echo-epoll -e|-c 100 -s 128"
	"echo-threads|rs-echo-threads|-c 500 -s 128"
	"legacy|rs-legacy|-c 100 -s 1024"
	"legacy-threads|rs-legacy -t|-c 500 -s 1024"
	"prefork|rs-prefork -n 4|-c 100 -s 128"
	"prefork-epoll|rs-prefork -n 4 -e|-c 100 -s 128"
)

# rs-prefork prints "total connections C" when stopped: every connection of
# the load plus the readiness probe must have been accepted by some child.
prefork_check() { # TAG SRV PARENT-PID STATS MODE
	local tag=$1 srv=$2 parent=$3 stats=$4 mode=$5 total kids
	total=$(sed -n 's/^total connections \([0-9]*\)$/\1/p' "${SRV_LOG[$srv]}")
	check "$([ "${total:-0}" -ge 101 ]; echo $?)" "$tag children accepted all 101 connections (${total:-?})" \
		"$(grep -E '^(child|total)' "${SRV_LOG[$srv]}")"
	[ "$mode" = native ] && return 0
	kids=$(stat_sum "$stats" lines "$parent")
	# The children leave with _exit(0) (demo-apps/rs-prefork.c).
	check "$([ "$kids" = 4 ]; echo $?)" "$tag stats from the 4 children (which end with _exit)" \
		"$kids stats lines with ppid $parent, $(stat_sum "$stats" lines) in all: the children's" \
		"counters are lost, so their ring use cannot be checked"
}

for mode in $(run_modes); do
	secs=2
	[ "$mode" = native ] && secs=1
	for spec in "${ECHO_SERVERS[@]}"; do
		IFS='|' read -r name cmd lgargs <<<"$spec"
		tag="[$mode $cmd]"
		srv=$name-$mode
		port=$(free_port) || exit 1
		sstats=$OUT/$name-$mode.stats
		shim_env "$mode" "$sstats"
		read -ra argv <<<"$cmd"
		start_server "$srv" "$port" "${SHIM_ENV[@]}" "$DEMO/${argv[0]}" "${argv[@]:1}" -p "$port" || continue
		parent=${SRV_PID[$srv]}
		lout=$OUT/loadgen-$srv.out
		read -ra la <<<"$lgargs"
		timeout 60 "$LOADGEN" -p "$port" "${la[@]}" -t "$secs" -q >"$lout" 2>&1
		rc=$?
		line=$(grep '^rs-loadgen:' "$lout")
		requests=$(grep -o ' requests=[0-9]*' <<<"$line" | cut -d= -f2)
		errors=$(grep -o ' errors=[0-9]*' <<<"$line" | cut -d= -f2)
		if [ "$rc" = 0 ] && [ "${errors:-x}" = 0 ] && [ "${requests:-0}" -gt 0 ]; then
			ok "$tag rs-loadgen $lgargs -t $secs: requests=$requests errors=0 $(grep -o 'rps=[0-9.]*' <<<"$line")"
		else
			not_ok "$tag rs-loadgen $lgargs -t $secs failed (exit $rc, errors=${errors:-?}, requests=${requests:-?})" \
				"$(tail_of "$lout" 12)"
			requests=0
		fi
		server_up "$srv" "$tag" || continue
		# rs-prefork's blocking children take the queued connections one by
		# one after the load ends; give them a moment.
		[[ $name == prefork* ]] && sleep 0.5
		stop_check "$srv" "$tag" TERM 10
		if [[ $name == prefork* ]]; then
			prefork_check "$tag" "$srv" "$parent" "$sstats" "$mode" || continue
		fi
		if [ "$mode" != native ]; then
			if [[ $name == *threads ]]; then
				# 500 connection threads, at most RINGSHIM_MAX_RINGS (64)
				# rings: the threads past the cap pass their calls
				# through, so only those with a ring count here.
				ring_check "$tag I/O through the ring (threads with a ring)" "$sstats" 0
				cap=$(stat_sum "$sstats" pt_ring_cap)
				rings=$(stat_sum "$sstats" rings_created)
				check "$([ "$cap" -gt 0 ]; echo $?)" \
					"$tag ring cap reached (pt_ring_cap=$cap, rings_created=$rings)"
			else
				# Each verified echo needs at least one receive and one send.
				ring_check "$tag I/O through the ring ($requests requests)" "$sstats" "$requests"
			fi
			# Single-process epoll servers: batch accepts ahead.
			if [ "$mode" = batch ] && [[ $name == echo-epoll* || $name == legacy ]]; then
				acceptq_check "$tag accepts from the accept-ahead queue" "$sstats"
			fi
		fi
	done

	for m in sendfile rw; do
		tag="[$mode rs-httpd -m $m]"
		srv=httpd-$m-$mode
		port=$(free_port) || exit 1
		sstats=$OUT/httpd-$m-$mode.stats
		shim_env "$mode" "$sstats"
		start_server "$srv" "$port" "${SHIM_ENV[@]}" "$DEMO/rs-httpd" -r "$WWW" -m "$m" -p "$port" || continue
		shim_env native ""
		requests=0
		http_fetch_all "$tag" "$port" "$OUT/dl-$srv" && requests=$((requests + 4))
		http_burst "$tag" "$port" "$secs"
		requests=$((requests + BURST_N))
		http_fetch_all "$tag final" "$port" "$OUT/dl-$srv-final" && requests=$((requests + 4))
		server_up "$srv" "$tag" || continue
		stop_check "$srv" "$tag" TERM 10
		if [ "$mode" != native ]; then
			ring_check "$tag I/O through the ring ($requests requests)" "$sstats" "$requests"
			[ "$mode" = batch ] && acceptq_check "$tag accepts from the accept-ahead queue" "$sstats"
		fi
	done
done
exit 0
