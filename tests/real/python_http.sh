#!/usr/bin/env bash
# Python's http.server (Debian's /usr/bin/python3) serving 0 B / 1 KiB / 1 MiB /
# 10 MiB random files and a directory listing, fetched by curl; natively, then
# server and curl both under the shim in each mode.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need python3 curl curl || exit 0
[ -x "$PY" ] || { need python3 python3 || exit 0; }

WWW=$OUT/www
make_files "$WWW"

for mode in $(run_modes); do
	port=$(free_port) || exit 1
	srv=http-$mode
	sstats=$OUT/python_http-$mode.stats
	cstats=$OUT/python_http-$mode.curl.stats
	shim_env "$mode" "$sstats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" \
		"$PY" -m http.server "$port" --bind 127.0.0.1 --directory "$WWW" || continue
	shim_env "$mode" "$cstats"
	dl=$OUT/dl-$mode
	mkdir -p "$dl"
	bad=
	for f in "${FILES[@]}"; do
		if ! env "${SHIM_ENV[@]}" curl -sS --fail --max-time 60 -o "$dl/$f" \
			"http://127.0.0.1:$port/$f" 2>>"$OUT/curl-$mode.err"; then
			bad+="$f "
		fi
	done
	if [ -n "$bad" ]; then
		not_ok "[$mode] curl failed for: $bad" "$(tail_of "$OUT/curl-$mode.err")"
	fi
	sums_check "[$mode] sha256 of the 4 files (0 B..10 MiB) fetched by curl" "$WWW/SHA256SUMS" "$dl"

	listing=$OUT/listing-$mode.html
	if env "${SHIM_ENV[@]}" curl -sS --fail --max-time 30 -o "$listing" \
		"http://127.0.0.1:$port/" 2>>"$OUT/curl-$mode.err"; then
		absent=
		for f in "${FILES[@]}" SHA256SUMS; do
			grep -q "href=\"$f\"" "$listing" || absent+="$f "
		done
		check "$([ -z "$absent" ]; echo $?)" "[$mode] directory listing names every file" \
			"not listed: $absent" "$(head -c 600 "$listing")"
	else
		not_ok "[$mode] directory listing request failed" "$(tail_of "$OUT/curl-$mode.err")"
	fi

	# 6 requests: 4 files, listing (and the readiness probe, which sends nothing).
	server_up "$srv" "[$mode]" &&
		stop_check "$srv" "[$mode]" INT # SIGINT: KeyboardInterrupt, a normal exit
	if [ "$mode" != native ]; then
		# Each request needs at least a receive and a send; 11 MiB go out
		# in far more than 5 sends.
		ring_check "[$mode] server I/O through the ring" "$sstats" 20
		ring_check "[$mode] curl I/O through the ring" "$cstats" 5
	fi
done
exit 0
