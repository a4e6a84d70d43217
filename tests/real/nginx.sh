#!/usr/bin/env bash
# nginx (master + workers) serving 0 B / 1 KiB / 1 MiB / 10 MiB random files:
# keep-alive fetches of all four on one connection (curl, preloaded too), a
# burst of 50 concurrent connections (wrk, else 50 background curls), a final
# checksum fetch, no [alert]/[crit]/[emerg] in the error log, graceful stop
# with SIGQUIT and counters from every worker. Two configurations: 2 workers
# with sendfile on, 1 worker with sendfile off; natively and in each mode.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

need 'nginx-light|nginx' nginx || exit 0
need curl curl || exit 0

WWW=$OUT/www
make_files "$WWW"
NGINX_V=$(nginx -V 2>&1)

# nginx.conf for one run: WORKERS SENDFILE(on|off) PORT PREFIX
write_conf() {
	local workers=$1 sendfile=$2 port=$3 p=$4 m
	mkdir -p "$p/tmp"
	{
		echo "daemon off;"
		echo "master_process on;"
		echo "worker_processes $workers;"
		# As root the workers would run as nobody, who cannot read $OUT.
		[ "$(id -u)" = 0 ] && echo "user root root;"
		echo "pid $p/nginx.pid;"
		echo "error_log $p/error.log info;"
		echo "events { worker_connections 1024; }"
		echo "http {"
		echo "  access_log off;"
		echo "  default_type application/octet-stream;"
		echo "  sendfile $sendfile;"
		echo "  tcp_nopush on;"
		echo "  keepalive_timeout 30s;"
		echo "  keepalive_requests 100000;"
		echo "  client_body_temp_path $p/tmp/body;"
		for m in proxy fastcgi uwsgi scgi; do
			[[ $NGINX_V == *"--without-http_${m}_module"* ]] ||
				echo "  ${m}_temp_path $p/tmp/$m;"
		done
		echo "  server {"
		echo "    listen 127.0.0.1:$port;"
		echo "    root $WWW;"
		echo "    location / { }"
		echo "  }"
		echo "}"
	} >"$p/nginx.conf"
}

for mode in $(run_modes); do
	for cfg in "2 on" "1 off"; do
		read -r workers sendfile <<<"$cfg"
		tag="[$mode workers=$workers sendfile=$sendfile]"
		name=nginx-$mode-w$workers
		prefix=$OUT/$name
		port=$(free_port) || exit 1
		write_conf "$workers" "$sendfile" "$port" "$prefix"
		sstats=$OUT/nginx-$mode-w$workers.stats
		cstats=$OUT/nginx-$mode-w$workers.curl.stats
		shim_env "$mode" "$sstats"
		start_server "$name" "$port" "${SHIM_ENV[@]}" \
			nginx -p "$prefix" -e "$prefix/error.log" -c "$prefix/nginx.conf" || continue
		shim_env "$mode" "$cstats"
		requests=0
		http_fetch_all "$tag" "$port" "$OUT/dl-$name" && requests=$((requests + 4))
		http_burst "$tag" "$port" "$([ "$mode" = native ] && echo 1 || echo 2)"
		requests=$((requests + BURST_N))
		http_fetch_all "$tag final" "$port" "$OUT/dl-$name-final" && requests=$((requests + 4))
		master=${SRV_PID[$name]}
		server_up "$name" "$tag" || continue
		stop_check "$name" "$tag" QUIT 10
		if grep -E '\[(alert|crit|emerg)\]' "$prefix/error.log" >"$OUT/$name.alerts"; then
			not_ok "$tag error log has [alert]/[crit]/[emerg] lines" "$(head -5 "$OUT/$name.alerts")"
		else
			ok "$tag error log has no [alert]/[crit]/[emerg]"
		fi
		[ "$mode" = native ] && continue
		wlines=$(stat_sum "$sstats" lines "$master")
		lines=$(stat_sum "$sstats" lines)
		check "$([ "$wlines" = "$workers" ] && [ "$lines" = $((workers + 1)) ]; echo $?)" \
			"$tag stats from the master and all $workers workers" \
			"expected $((workers + 1)) lines ($workers with ppid $master), got $lines ($wlines)"
		# Every request is at least one receive and one send by a worker.
		ring_check "$tag nginx I/O through the ring ($requests requests)" "$sstats" "$requests"
		ring_check "$tag curl I/O through the ring" "$cstats" 8
	done
done
exit 0
