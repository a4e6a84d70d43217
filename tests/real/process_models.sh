#!/usr/bin/env bash
# Real programs of each process model, natively and under the shim in each
# mode (nginx with 2 worker processes is in nginx.sh):
#  - redis-server BGSAVE (fork while clients are served): 2000 keys written,
#    BGSAVE while a client keeps writing, the dump loaded by a second
#    preloaded redis-server and every key read back;
#  - memcached -t 4 (worker threads fed through a pipe by the listener
#    thread): memcached_client.py's set/get of 2000 values of 1..100000 bytes;
#  - python3 with multiprocessing (fork) children talking over TCP and
#    socketpairs, and subprocess pipes to cat; its output compared with the
#    native run's.
# Every preloaded run must show its I/O went through the ring.
# shellcheck source=lib.sh
source "$(dirname "$0")/lib.sh"

HAVE_REDIS=1 HAVE_MC=1
need redis-server redis-server || HAVE_REDIS=0
[ "$HAVE_REDIS" = 1 ] && { need redis-tools redis-cli || HAVE_REDIS=0; }
need memcached memcached || HAVE_MC=0
NKEYS=2000
USER_ARGS=()
[ "$(id -u)" = 0 ] && USER_ARGS=(-u root)

# ---- redis BGSAVE ---------------------------------------------------------------
redis_bgsave() { # MODE
	local mode=$1 port port2 srv=redis-bg-$1 srv2=redis-load-$1 dir=$OUT/redis-bg-$1
	local sstats=$OUT/redis-bg-$1.stats cstats=$OUT/redis-bg-$1.cli.stats lstats=$OUT/redis-load-$1.stats
	port=$(free_port) || return
	mkdir -p "$dir"
	rm -f "$dir/dump.rdb"
	shim_env "$mode" "$sstats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" redis-server --port "$port" --bind 127.0.0.1 \
		--save '' --appendonly no --daemonize no --dir "$dir" --dbfilename dump.rdb --logfile '' || return
	shim_env "$mode" "$cstats"
	local cli=(timeout 60 env "${SHIM_ENV[@]}" redis-cli -p "$port")
	"$PY" -c "
import sys
for i in range($NKEYS):
    k = b'bg:%d' % i; v = (b'%d-' % i) * (1 + i % 50)
    sys.stdout.buffer.write(b'*3\r\n\$3\r\nSET\r\n\$%d\r\n%s\r\n\$%d\r\n%s\r\n' % (len(k), k, len(v), v))
" >"$dir/set.resp"
	"${cli[@]}" --pipe <"$dir/set.resp" >"$dir/pipe.out" 2>&1
	grep -q "errors: 0, replies: $NKEYS" "$dir/pipe.out"
	check $? "[$mode] redis: $NKEYS keys written" "$(tail_of "$dir/pipe.out")" || { stop_server "$srv"; return; }
	# A client keeps writing while the server forks for BGSAVE.
	(for i in $(seq 1 200); do echo "INCR during:bgsave"; done) >"$dir/incr.txt"
	"${cli[@]}" <"$dir/incr.txt" >"$dir/incr.out" 2>&1 &
	local writer=$!
	rt_track "$writer"
	local r
	r=$("${cli[@]}" BGSAVE 2>&1)
	wait "$writer"
	rt_reaped "$writer"
	local end=$((SECONDS + 30)) info=
	while [ "$SECONDS" -lt "$end" ]; do
		info=$("${cli[@]}" INFO persistence 2>/dev/null | tr -d '\r')
		grep -q '^rdb_bgsave_in_progress:0' <<<"$info" && grep -q '^rdb_last_bgsave_status:ok' <<<"$info" &&
			[ -s "$dir/dump.rdb" ] && break
		sleep 0.2
	done
	local incr
	incr=$("${cli[@]}" GET during:bgsave 2>&1)
	if [[ $r == *"Background saving started"* ]] && [ -s "$dir/dump.rdb" ] &&
		grep -q '^rdb_last_bgsave_status:ok' <<<"$info" && [ "$incr" = 200 ]; then
		ok "[$mode] redis: BGSAVE done (child forked while a client wrote; INCRs all counted)"
	else
		not_ok "[$mode] redis: BGSAVE reply '$r', during:bgsave=$incr" "$info" "$(tail_of "${SRV_LOG[$srv]}")"
	fi
	server_up "$srv" "[$mode] redis BGSAVE" && stop_check "$srv" "[$mode] redis BGSAVE" TERM
	# The dump, loaded by another server; every key read back.
	port2=$(free_port) || return
	shim_env "$mode" "$lstats"
	start_server "$srv2" "$port2" "${SHIM_ENV[@]}" redis-server --port "$port2" --bind 127.0.0.1 \
		--save '' --appendonly no --daemonize no --dir "$dir" --dbfilename dump.rdb --logfile '' || return
	shim_env "$mode" "$cstats"
	local cli2=(timeout 60 env "${SHIM_ENV[@]}" redis-cli -p "$port2")
	"$PY" -c "
for i in range($NKEYS): print('GET bg:%d' % i)" >"$dir/get.txt"
	"$PY" -c "
for i in range($NKEYS): print(('%d-' % i) * (1 + i % 50))" >"$dir/want.txt"
	"${cli2[@]}" <"$dir/get.txt" >"$dir/got.txt" 2>&1
	cmp -s "$dir/want.txt" "$dir/got.txt"
	check $? "[$mode] redis: the BGSAVE dump holds all $NKEYS values" "$(diff "$dir/want.txt" "$dir/got.txt" | head -4)"
	stop_check "$srv2" "[$mode] redis load" TERM
	if [ "$mode" != native ]; then
		# --pipe sends many commands per read: a floor well below NKEYS.
		ring_check "[$mode] redis-server (and its BGSAVE child) through the ring" "$sstats" 200
		local lines
		lines=$(stat_sum "$sstats" lines)
		check "$([ "$lines" -ge 2 ]; echo $?)" "[$mode] redis: counters from the server and its BGSAVE child ($lines lines)" \
			"expected >= 2 stats lines, got $lines"
		ring_check "[$mode] redis-server loading the dump through the ring" "$lstats" "$NKEYS"
	fi
}

# ---- memcached -t 4 ---------------------------------------------------------------
memcached_t4() { # MODE
	local mode=$1 port srv=memcached-t4-$1 sstats=$OUT/memcached-t4-$1.stats cstats=$OUT/memcached-t4-$1.cli.stats
	port=$(free_port) || return
	shim_env "$mode" "$sstats"
	start_server "$srv" "$port" "${SHIM_ENV[@]}" \
		memcached -p "$port" -l 127.0.0.1 -U 0 -t 4 -m 256 -c 1024 "${USER_ARGS[@]}" || return
	shim_env "$mode" "$cstats"
	local cout=$OUT/memcached-t4-$mode.out rc
	timeout 120 env "${SHIM_ENV[@]}" "$PY" "$RT_DIR/memcached_client.py" "$port" "$NKEYS" >"$cout" 2>&1
	rc=$?
	if [ "$rc" = 0 ] && grep -q "errors=0" "$cout"; then
		ok "[$mode] memcached -t 4: $NKEYS values set and read back: $(grep -o 'value_bytes=[0-9]*' "$cout")"
	else
		not_ok "[$mode] memcached -t 4: memcached_client.py (exit $rc)" "$(tail_of "$cout" 12)"
	fi
	server_up "$srv" "[$mode] memcached -t 4" && stop_check "$srv" "[$mode] memcached -t 4" TERM
	if [ "$mode" != native ]; then
		ring_check "[$mode] memcached -t 4 through the ring" "$sstats" "$((2 * NKEYS))"
		ring_check "[$mode] memcached client through the ring" "$cstats" "$((2 * NKEYS))"
	fi
}

# ---- python multiprocessing + subprocess ---------------------------------------
PYPROG=$OUT/procs.py
cat >"$PYPROG" <<'PY'
import hashlib, multiprocessing as mp, os, socket, subprocess, sys

def worker(port, n):
    # A forked child: a TCP client of the parent's server.
    with socket.create_connection(("127.0.0.1", port)) as s:
        msg = (b"worker %d " % n) * (1000 + n)
        s.sendall(len(msg).to_bytes(4, "big") + msg)
        back = b""
        while len(back) < 32:
            chunk = s.recv(65536)
            if not chunk:
                break
            back += chunk
        return back == hashlib.sha256(msg).digest()

def pair_child(sock):
    data = b""
    while not data.endswith(b"END"):
        data += sock.recv(4096)
    sock.sendall(hashlib.sha256(data).digest())
    sock.close()

def main():
    mp.set_start_method("fork")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    port = srv.getsockname()[1]
    N = 8
    with mp.Pool(4) as pool:
        res = pool.starmap_async(worker, [(port, i) for i in range(N)])
        for _ in range(N):
            c, _ = srv.accept()
            with c:
                hdr = b""
                while len(hdr) < 4:
                    hdr += c.recv(4 - len(hdr))
                ln = int.from_bytes(hdr, "big")
                body = b""
                while len(body) < ln:
                    body += c.recv(65536)
                c.sendall(hashlib.sha256(body).digest())
        print("pool workers verified:", sum(res.get(60)), "of", N)
    # A Process talking over a socketpair inherited across fork.
    a, b = socket.socketpair()
    p = mp.Process(target=pair_child, args=(b,))
    p.start()
    b.close()
    payload = os.urandom(200000) + b"END"
    a.sendall(payload)
    print("socketpair child digest ok:", a.recv(32) == hashlib.sha256(payload).digest())
    p.join()
    print("child exit code:", p.exitcode)
    # subprocess through pipes (fork+exec or posix_spawn/vfork inside).
    blob = os.urandom(3 * 1024 * 1024)
    out = subprocess.run(["cat"], input=blob, stdout=subprocess.PIPE, check=True).stdout
    print("subprocess cat round trip:", out == blob)
    out = subprocess.run(["sh", "-c", "echo one; echo two >&2; exit 3"], capture_output=True)
    print("subprocess sh:", out.returncode, out.stdout, out.stderr)
    pr = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lines = []
    for i in range(100):
        pr.stdin.write(b"line %d\n" % i)
        pr.stdin.flush()
        lines.append(pr.stdout.readline())
    pr.stdin.close()
    print("Popen line by line:", lines == [b"line %d\n" % i for i in range(100)], pr.wait())

main()
PY

python_procs() { # MODE
	local mode=$1 stats=$OUT/python-procs-$1.stats out=$OUT/python-procs-$1.out rc
	shim_env "$mode" "$stats"
	timeout 120 env "${SHIM_ENV[@]}" "$PY" "$PYPROG" >"$out" 2>&1
	rc=$?
	if [ "$mode" = native ]; then
		check "$rc" "[native] python multiprocessing + subprocess ran" "$(tail_of "$out")"
		return
	fi
	cmp -s "$OUT/python-procs-native.out" "$out"
	check $? "[$mode] python multiprocessing + subprocess: output identical to the native run (exit $rc)" \
		"$(diff "$OUT/python-procs-native.out" "$out" | head -8)"
	ring_check "[$mode] python and its children through the ring" "$stats" 20
	local lines
	lines=$(stat_sum "$stats" lines)
	check "$([ "$lines" -ge 6 ]; echo $?)" "[$mode] python: counters from the parent, pool workers and children ($lines lines)" \
		"expected >= 6 stats lines, got $lines"
}

for mode in $(run_modes); do
	[ "$HAVE_REDIS" = 1 ] && redis_bgsave "$mode"
	[ "$HAVE_MC" = 1 ] && memcached_t4 "$mode"
	python_procs "$mode"
done
exit 0
