#!/usr/bin/env bash
# Python asyncio (Debian's /usr/bin/python3): an echo server (asyncio_echo.py
# server) driven by an asyncio client with 50 connections verifying every
# echoed byte; and an asyncio program running /bin/cat through pipes with
# create_subprocess_exec. Natively, then everything under the shim in each
# mode (the cat children inherit the preload).
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

[ -x "$PY" ] || { need python3 python3 || exit 0; }
PROG=$RT_DIR/asyncio_echo.py
CONNS=50 MSGS=20

for mode in $(run_modes); do
	port=$(free_port) || exit 1
	srv=asyncio-server-$mode
	sstats=$OUT/asyncio-$mode.stats
	cstats=$OUT/asyncio-$mode.client.stats
	pstats=$OUT/asyncio-$mode.subproc.stats
	shim_env "$mode" "$sstats"
	if start_server "$srv" "$port" "${SHIM_ENV[@]}" "$PY" "$PROG" server "$port"; then
		shim_env "$mode" "$cstats"
		cout=$OUT/client-$mode.out
		timeout 90 env "${SHIM_ENV[@]}" "$PY" "$PROG" client "$port" "$CONNS" "$MSGS" >"$cout" 2>&1
		rc=$?
		line=$(grep '^client:' "$cout")
		if [ "$rc" = 0 ]; then
			ok "[$mode] asyncio client, $CONNS connections: ${line#client: }"
		else
			not_ok "[$mode] asyncio client failed (exit $rc)" "$(tail_of "$cout" 12)"
		fi
		if server_up "$srv" "[$mode]"; then
			if stop_check "$srv" "[$mode] (SIGTERM via loop.add_signal_handler)" TERM 10; then
				# The client's connections plus start_server's readiness probe.
				sline=$(grep '^server: stopped' "${SRV_LOG[$srv]}")
				want="connections=$((CONNS + 1)) echoed_bytes=$(grep -o 'bytes=[0-9]*' <<<"$line" | cut -d= -f2)"
				check "$([[ $sline == *"$want" ]]; echo $?)" "[$mode] server saw $want" \
					"server said: ${sline:-nothing}" "$(tail_of "${SRV_LOG[$srv]}" 4)"
			fi
			if [ "$mode" != native ]; then
				ring_check "[$mode] asyncio server I/O through the ring (>= $((CONNS * MSGS)) messages)" \
					"$sstats" $((CONNS * MSGS))
				[ "$mode" = batch ] &&
					acceptq_check "[$mode] asyncio server accepts from the accept-ahead queue" "$sstats"
				ring_check "[$mode] asyncio client I/O through the ring" "$cstats" $((CONNS * MSGS))
			fi
		fi
	fi

	# Pipes: asyncio subprocesses.
	shim_env "$mode" "$pstats"
	pout=$OUT/subproc-$mode.out
	timeout 90 env "${SHIM_ENV[@]}" "$PY" "$PROG" subproc >"$pout" 2>&1
	rc=$?
	line=$(grep '^subproc:' "$pout")
	if [ "$rc" = 0 ]; then
		ok "[$mode] asyncio create_subprocess_exec(/bin/cat) through pipes: ${line#subproc: }"
	else
		not_ok "[$mode] asyncio subprocess/pipes failed (exit $rc$([ "$rc" = 124 ] && echo ": hung, killed after 90 s"))" \
			"$(tail_of "$pout" 12)"
	fi
	if [ "$mode" != native ]; then
		# 200 lines written and read back one at a time, 5 MiB more in bulk.
		ring_check "[$mode] asyncio+cat pipe I/O through the ring" "$pstats" 400
	fi
done
exit 0
