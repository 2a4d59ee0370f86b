#!/usr/bin/env bash
# Fault test: Postfix sends N (default 1000) messages through the milter
# (milter_default_action = tempfail); the milter is killed with SIGKILL
# midway and restarted; the queue is flushed. Every message must end
# delivered (at smtp-sink) or held, none lost.
#
# The client is a small SMTP sender (python3 smtplib, 4 sessions) that,
# like any MTA, retries a message answered with 4xx: while the milter is
# down Postfix answers 451 instead of accepting unscanned mail.
#
# Usage (as root, Debian's postfix package):
#   cargo build --release
#   scripts/kill9-test.sh [MESSAGES]
set -euo pipefail

N=${1:-1000}
HERE=$(cd "$(dirname "$0")/.." && pwd)
MILTER=${MILTER:-$HERE/target/release/malspam-milter}
[ "$(id -u)" = 0 ] || { echo "run as root (Postfix needs it)" >&2; exit 1; }
[ -x "$MILTER" ] || { echo "build first: cargo build --release" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "port $1 never opened" >&2; return 1
}

dir=$(mktemp -d /tmp/malspam-kill9-XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir"/{etc,spool/malspam-milter,data,sink}
chown postfix "$dir/data" "$dir/sink"
smtp_port=$(free_port); sink_port=$(free_port)
for f in main.cf master.cf; do
    sed -e "s|@DIR@|$dir|g" -e "s|@SMTP_PORT@|$smtp_port|g" -e "s|@SINK_PORT@|$sink_port|g" \
        "$HERE/tests/postfix/$f.in" > "$dir/etc/$f"
done
grep -q '^milter_default_action = tempfail' "$dir/etc/main.cf"
echo "smtpd_client_connection_count_limit = 0" >> "$dir/etc/main.cf"
cat > "$dir/milter.toml" <<TOML
[milter]
listen = "unix:$dir/spool/malspam-milter/milter.sock"
socket_mode = "0666"
log_level = "warn"
[store]
backend = "embedded"
path = "$dir/state.sqlite3"
TOML

milter_pid=""
start_milter() {
    "$MILTER" run --config "$dir/milter.toml" 2>>"$dir/milter.log" &
    milter_pid=$!
    for _ in $(seq 200); do
        python3 -c "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])" \
            "$dir/spool/malspam-milter/milter.sock" 2>/dev/null && return 0
        sleep 0.05
    done
    echo "milter did not start" >&2; exit 1
}
cleanup() {
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    [ -n "$milter_pid" ] && kill "$milter_pid" 2>/dev/null || true
    kill "$sink_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$dir"
}

smtp-sink -u postfix -d "$dir/sink/msg." "127.0.0.1:$sink_port" 100 >/dev/null 2>&1 &
sink_pid=$!
trap cleanup EXIT
wait_port "$sink_port"
start_milter
postfix -c "$dir/etc" start >/dev/null 2>&1
wait_port "$smtp_port"

# Send in the background; it prints how many 4xx answers it retried.
python3 - "$smtp_port" "$N" "$dir/accepted" > "$dir/sender.out" <<'PY' &
import os, smtplib, sys, threading, time
port, n, accepted_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
next_id, accepted, retries = [0], [0], [0]
def worker():
    s = None
    while True:
        with lock:
            if next_id[0] >= n:
                break
            i = next_id[0]; next_id[0] += 1
        msg = (f"From: sender@kill9.example\r\nTo: rcpt@dest.example\r\n"
               f"Subject: kill9 test {i}\r\nMessage-ID: <{i}@kill9.example>\r\n\r\n"
               f"message number {i}\r\n" + "filler line\r\n" * 50)
        while True:
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", port, timeout=60)
                s.sendmail("sender@kill9.example", ["rcpt@dest.example"], msg)
                break
            except (smtplib.SMTPException, OSError):
                with lock:
                    retries[0] += 1
                try:
                    s.close()
                except Exception:
                    pass
                s = None
                time.sleep(0.2)
        with lock:
            accepted[0] += 1
            with open(accepted_file + ".tmp", "w") as f:
                f.write(str(accepted[0]))
            os.replace(accepted_file + ".tmp", accepted_file)
    if s is not None:
        try: s.quit()
        except Exception: pass
threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(f"accepted {accepted[0]}, retried after 4xx/disconnect {retries[0]}")
PY
sender_pid=$!

# Kill -9 at the midpoint, stay down 2 s, restart.
accepted() { local a; a=$(cat "$dir/accepted" 2>/dev/null || true); echo "${a:-0}"; }
while [ "$(accepted)" -lt $((N / 2)) ]; do sleep 0.02; done
kill -9 "$milter_pid"
wait "$milter_pid" 2>/dev/null || true
echo "killed the milter (pid $milter_pid) with SIGKILL after $(accepted) accepted"
sleep 2
start_milter
echo "restarted the milter (pid $milter_pid)"
wait "$sender_pid"
cat "$dir/sender.out"

# Flush and wait until nothing is left in active/incoming/deferred.
postqueue_() { setpriv --regid=postdrop --clear-groups postqueue -c "$dir/etc" "$@"; }
for _ in $(seq 600); do
    postqueue_ -f >/dev/null 2>&1 || true
    left=$(postqueue_ -j | python3 -c 'import sys,json; print(sum(1 for l in sys.stdin if json.loads(l)["queue_name"]!="hold"))')
    [ "$left" = 0 ] && break
    sleep 0.5
done

python3 - "$dir" "$N" <<'PY'
import json, os, re, subprocess, sys
d, n = sys.argv[1], int(sys.argv[2])
ids = []
for f in os.listdir(f"{d}/sink"):
    m = re.search(rb"Message-ID: <(\d+)@kill9\.example>", open(f"{d}/sink/{f}", "rb").read(), re.I)
    if m: ids.append(int(m.group(1)))
q = subprocess.run(["setpriv", "--regid=postdrop", "--clear-groups", "postqueue", "-c", f"{d}/etc", "-j"],
                   capture_output=True, text=True).stdout
queued = [json.loads(l) for l in q.splitlines()]
held = [x for x in queued if x["queue_name"] == "hold"]
deferred = [x for x in queued if x["queue_name"] != "hold"]
delivered = set(ids)
missing = n - len(delivered) - len(held) - len(deferred)
print(f"delivered (distinct at smtp-sink): {len(delivered)}, duplicates: {len(ids) - len(delivered)}")
print(f"held: {len(held)}, still deferred: {len(deferred)}")
print(f"delivered + held + deferred = {len(delivered) + len(held) + len(deferred)} of {n}; lost: {missing}")
sys.exit(0 if missing == 0 and not deferred else 1)
PY
