#!/usr/bin/env bash
# memcached -t 2: 2000 keys of 1..100000 bytes set and read back byte for byte
# by memcached_client.py (text protocol, stdlib sockets), then memcaslap for
# 2 s with 10% of the gets verified (if libmemcached-tools is installed).
# Natively, then server and clients under the shim in each mode.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need memcached memcached || exit 0
[ -x "$PY" ] || { need python3 python3 || exit 0; }
HAVE_MCS=0
command -v memcaslap >/dev/null 2>&1 && HAVE_MCS=1
[ "$HAVE_MCS" = 1 ] || note "memcaslap not installed (libmemcached-tools): skipping the load part"

NKEYS=2000
USER_ARGS=()
[ "$(id -u)" = 0 ] && USER_ARGS=(-u root)

for mode in $(run_modes); do
	port=$(free_port) || exit 1
	srv=memcached-$mode
	sstats=$OUT/memcached-$mode.stats
	cstats=$OUT/memcached-$mode.clients.stats
	shim_env "$mode" "$sstats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" \
		memcached -p "$port" -l 127.0.0.1 -U 0 -t 2 -m 256 -c 1024 "${USER_ARGS[@]}" || continue
	shim_env "$mode" "$cstats"
	requests=0

	cout=$OUT/client-$mode.out
	timeout 120 env "${SHIM_ENV[@]}" "$PY" "$RT_DIR/memcached_client.py" "$port" "$NKEYS" >"$cout" 2>&1
	rc=$?
	if [ "$rc" = 0 ] && grep -q "errors=0" "$cout"; then
		ok "[$mode] $NKEYS sets + $NKEYS gets + multi-gets of 1..100000-byte values verified: $(grep -o 'value_bytes=[0-9]*' "$cout")"
	else
		not_ok "[$mode] memcached_client.py (exit $rc)" "$(tail_of "$cout" 12)"
	fi
	requests=$((requests + 2 * NKEYS + NKEYS / 50))

	if [ "$HAVE_MCS" = 1 ]; then
		mout=$OUT/memcaslap-$mode.out
		timeout 60 env "${SHIM_ENV[@]}" memcaslap -s "127.0.0.1:$port" -t 2s -T 2 -c 32 -v 0.1 >"$mout" 2>&1
		rc=$?
		ops=$(awk '/^Run time:/ {for (i = 1; i < NF; i++) if ($i == "Ops:") print $(i + 1)}' "$mout")
		probs=
		[ "$rc" = 0 ] || probs+="exit $rc; "
		[ -n "$ops" ] && [ "$ops" -gt 0 ] || probs+="no Ops count; "
		for k in get_misses verify_misses verify_failed; do
			v=$(awk -v k="$k:" '$1 == k {print $2}' "$mout")
			[ "$v" = 0 ] || probs+="$k=${v:-missing}; "
		done
		if grep -viE '^(verify_failed|verify_misses): 0$' "$mout" | grep -qiE 'error|fail|timeout'; then
			probs+="error lines; "
		fi
		if [ -z "$probs" ]; then
			ok "[$mode] memcaslap 2 s, 32 conns, 10% verified: $ops ops, no misses or failures"
			requests=$((requests + ops))
		else
			not_ok "[$mode] memcaslap: $probs" "$(grep -vE '^\s*$' "$mout" | tail -12)"
		fi
	fi

	server_up "$srv" "[$mode]" || continue
	stop_check "$srv" "[$mode]" TERM
	if [ "$mode" != native ]; then
		ring_check "[$mode] memcached I/O through the ring (>= $requests requests)" "$sstats" "$requests"
		[ "$mode" = batch ] && acceptq_check "[$mode] memcached accepts from the accept-ahead queue" "$sstats"
		ring_check "[$mode] clients' I/O through the ring" "$cstats" "$requests"
	fi
done
exit 0
