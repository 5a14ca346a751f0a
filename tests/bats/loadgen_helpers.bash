# loadgen_helpers.bash - helpers for loadgen.bats (the server helpers come
# from helpers.bash: start_server, stop_server, kill_started_servers).

LOADGEN_BIN=$BUILD_DIR/loadgen

# loadgen ARGS... - run loadgen against the started server, hang-guarded.
loadgen() {
	timeout -k 2 30 "$LOADGEN_BIN" --host 127.0.0.1 --port "$SERVER_PORT" \
		--quiet "$@"
}

# json_get FILE KEY[.SUBKEY] - print one field of a JSON file (python3
# also proves the file parses as JSON).
json_get() {
	python3 - "$1" "$2" <<'PY'
import json, sys
value = json.load(open(sys.argv[1]))
for key in sys.argv[2].split("."):
    value = value[key]
print(json.dumps(value) if isinstance(value, (dict, list)) else value)
PY
}

# fresh_digest ARGS... - start a new server (with $SERVER_ARGS), run a
# deterministic --orders loadgen with ARGS, stop the server; prints the
# digest. Order ids continue per symbol on one server, so each run needs
# its own.
fresh_digest() {
	# shellcheck disable=SC2086
	start_server --quiet ${SERVER_ARGS:-} || return 1
	loadgen --deterministic "$@" >"$BATS_TEST_TMPDIR/digest.out" 2>&1
	local rc=$?
	stop_server
	[ "$rc" -eq 0 ] || { cat "$BATS_TEST_TMPDIR/digest.out" >&2; return 1; }
	sed -n 's/^digest: \([0-9a-f]\{16\}\)$/\1/p' "$BATS_TEST_TMPDIR/digest.out"
}

# wait_port_file FILE - wait (at most 5 s) until a helper started in the
# background wrote the port it listens on as the first line of FILE; sets
# HELPER_PORT.
wait_port_file() {
	local i

	for ((i = 0; i < 100; i++)); do
		HELPER_PORT=$(head -n 1 "$1")
		[ -n "$HELPER_PORT" ] && return 0
		sleep 0.05
	done
	return 1
}

# start_fake_server MODE - a one-connection server that answers the Hello
# correctly and then the first order wrongly (MODE wrong-id: an Accepted
# for another cl_ord_id; bad-frame: a frame whose length does not match
# its type). Sets SERVER_PORT and FAKE_PID.
start_fake_server() {
	local out=$BATS_TEST_TMPDIR/fake.port

	python3 - "$1" >"$out" 3>&- <<'PY' &
import socket, struct, sys
mode = sys.argv[1]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(20)
conn, _ = srv.accept()
conn.settimeout(20)
def read(n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            sys.exit(0)
        data += chunk
    return data
read(16)                                            # Hello
conn.sendall(struct.pack("<HBBI", 8, ord("l"), 0, 1))  # HelloAck v1
order = read(32)                                    # NewOrder
symbol, cl_ord_id, price, qty, side, typ, tif = struct.unpack_from(
    "<IQqIBBB", order, 4)
if mode == "wrong-id":
    cl_ord_id += 1
    conn.sendall(struct.pack("<HBBIQQqIBBBB", 40, ord("A"), 0, symbol,
                             cl_ord_id, symbol << 32 | 1, price, qty,
                             side, typ, tif, 0))
else:
    conn.sendall(struct.pack("<HBBI", 12, ord("A"), 0, 0) + bytes(4))
try:
    while conn.recv(4096):
        pass
except OSError:
    pass
PY
	FAKE_PID=$!
	echo "$FAKE_PID" >>"$BATS_FILE_TMPDIR/server.pids"
	wait_port_file "$out" || return 1
	SERVER_PORT=$HELPER_PORT
}

# start_chunking_proxy PORT - a proxy to 127.0.0.1:PORT that forwards what
# the server sends in random 1..47-byte pieces, each its own TCP segment,
# so frames arrive split at every kind of boundary. Sets PROXY_PORT.
start_chunking_proxy() {
	local out=$BATS_TEST_TMPDIR/proxy.port

	python3 - "$1" >"$out" 3>&- <<'PY' &
import random, socket, sys, threading, time
target = int(sys.argv[1])
rng = random.Random(7)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
def pump(src, dst, chunked):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            while data:
                n = rng.randint(1, 47) if chunked else len(data)
                dst.sendall(data[:n])
                data = data[n:]
                if chunked and rng.random() < 0.05:
                    time.sleep(0.0005)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv.settimeout(30)
while True:
    try:
        client, _ = srv.accept()
    except OSError:
        break
    server = socket.create_connection(("127.0.0.1", target))
    for s in (client, server):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threading.Thread(target=pump, args=(client, server, False),
                     daemon=True).start()
    threading.Thread(target=pump, args=(server, client, True),
                     daemon=True).start()
PY
	echo "$!" >>"$BATS_FILE_TMPDIR/server.pids"
	wait_port_file "$out" || return 1
	PROXY_PORT=$HELPER_PORT
}

# hold_dead_port - bind a port without listening on it, so a connect there
# is refused and no other process can take the port meanwhile. Sets
# DEAD_PORT; the holder exits by itself after 30 s (or by teardown).
hold_dead_port() {
	local out=$BATS_TEST_TMPDIR/dead.port

	python3 -c '
import socket, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
time.sleep(30)
' >"$out" 3>&- &
	echo "$!" >>"$BATS_FILE_TMPDIR/server.pids"
	wait_port_file "$out" || return 1
	DEAD_PORT=$HELPER_PORT
}
