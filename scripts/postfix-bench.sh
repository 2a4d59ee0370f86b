#!/usr/bin/env bash
# End-to-end throughput: smtp-source -> Postfix (own config and queue, on
# loopback) -> smtp-sink, once without the milter and once with it (the
# release binary), the same messages both times. Prints messages/second for
# each and the ratio (target: with/without >= 0.95).
#
# Usage (as root, Debian's postfix package installed, no system Postfix
# needed):
#   cargo build --release
#   scripts/postfix-bench.sh [MESSAGES] [SESSIONS] [ROUNDS]
# MESSAGES (default 2000) are sent in four equal batches of body sizes
# 2 kB, 10 kB, 50 kB and 200 kB (smtp-source -l) over SESSIONS (default 10)
# parallel SMTP sessions, ROUNDS (default 3) times each case, alternating;
# the medians are compared. The Postfix config comes from tests/postfix/*.in.
set -euo pipefail

N=${1:-2000}
SESSIONS=${2:-10}
ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
MILTER=${MILTER:-$HERE/target/release/malspam-milter}
# MILTER_KIND=null: run examples/null_milter instead (the protocol floor:
# receives every message, scans nothing), built with
# `cargo build --release --example null_milter`.
# MILTER_KIND=compare: each round runs without a milter, with malspam-milter
# and with the null milter, and the medians of malspam and null are
# compared in the same run (the target: malspam/null >= 0.95).
MILTER_KIND=${MILTER_KIND:-malspam}
# STORE_BACKEND=memory: malspam-milter remembers in memory only (to tell
# the state store's share of the cost from the scan's).
STORE_BACKEND=${STORE_BACKEND:-embedded}
NULL_MILTER=$HERE/target/release/examples/null_milter
SIZES=(2000 10000 50000 200000)

[ "$(id -u)" = 0 ] || { echo "run as root (Postfix needs it)" >&2; exit 1; }
[ -x "$MILTER" ] || { echo "build first: cargo build --release ($MILTER)" >&2; exit 1; }
if [ "$MILTER_KIND" = null ] || [ "$MILTER_KIND" = compare ]; then
    [ -x "$NULL_MILTER" ] || { echo "build first: cargo build --release --example null_milter" >&2; exit 1; }
fi
for tool in postfix smtp-source smtp-sink; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install postfix)" >&2; exit 1; }
done

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

# run_case with|without [malspam|null]: prints the messages/second of one run.
run_case() {
    local mode=$1 kind=${2:-$MILTER_KIND} dir smtp_port sink_port sink_pid milter_pid=""
    dir=$(mktemp -d /tmp/malspam-bench-XXXXXX)
    chmod 755 "$dir"
    mkdir -p "$dir"/{etc,spool/malspam-milter,data}
    chown postfix "$dir/data"
    smtp_port=$(free_port); sink_port=$(free_port)
    for f in main.cf master.cf; do
        sed -e "s|@DIR@|$dir|g" -e "s|@SMTP_PORT@|$smtp_port|g" -e "s|@SINK_PORT@|$sink_port|g" \
            "$HERE/tests/postfix/$f.in" > "$dir/etc/$f"
    done
    # Up to SESSIONS deliveries at once to the sink, like a real relay.
    cat >> "$dir/etc/main.cf" <<CF
default_destination_concurrency_limit = $SESSIONS
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
CF
    if [ "$mode" = without ]; then
        sed -i -e 's|^smtpd_milters = .*|smtpd_milters =|' "$dir/etc/main.cf"
    else
        cat > "$dir/milter.toml" <<TOML
[milter]
listen = "unix:$dir/spool/malspam-milter/milter.sock"
socket_mode = "0666"
log_level = "warn"
[store]
backend = "$STORE_BACKEND"
path = "$dir/state.sqlite3"
TOML
        if [ "$kind" = null ]; then
            "$NULL_MILTER" "$dir/spool/malspam-milter/milter.sock" 2>"$dir/milter.log" &
        else
            "$MILTER" run --config "$dir/milter.toml" 2>"$dir/milter.log" &
        fi
        milter_pid=$!
        for _ in $(seq 200); do
            [ -S "$dir/spool/malspam-milter/milter.sock" ] && break
            sleep 0.05
        done
    fi
    # The sink discards (no -d dump): only Postfix and the milter are measured.
    smtp-sink -u postfix "127.0.0.1:$sink_port" 1000 >/dev/null 2>&1 &
    sink_pid=$!
    wait_port "$sink_port"
    postfix -c "$dir/etc" start >/dev/null 2>&1
    wait_port "$smtp_port"

    local per=$((N / ${#SIZES[@]})) total start end sent
    total=$((per * ${#SIZES[@]}))
    start=$(date +%s.%N)
    for size in "${SIZES[@]}"; do
        smtp-source -s "$SESSIONS" -m "$per" -l "$size" \
            -f sender@bench.example -t rcpt@dest.example "127.0.0.1:$smtp_port"
    done
    # Done when the sink has taken every message (Postfix logs status=sent).
    while :; do
        sent=$(grep -c 'status=sent' "$dir/maillog" 2>/dev/null || true)
        [ "${sent:-0}" -ge "$total" ] && break
        sleep 0.05
    done
    end=$(date +%s.%N)

    if [ -n "$milter_pid" ]; then
        # CPU seconds the milter spent (utime + stime, clock ticks).
        awk -v hz="$(getconf CLK_TCK)" -v n="$total" \
            '{ printf "milter CPU: %.2f s for %d messages = %.2f ms/message\n", ($14+$15)/hz, n, ($14+$15)/hz*1000/n }' \
            "/proc/$milter_pid/stat" >&2
    fi
    postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
    kill "$sink_pid" 2>/dev/null || true
    [ -n "$milter_pid" ] && kill "$milter_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
    python3 -c "print(f'{$total / ($end - $start):.1f}')"
}

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
if [ "$MILTER_KIND" = compare ]; then
    echo "$N messages (sizes ${SIZES[*]} bytes), $SESSIONS sessions, $ROUNDS rounds: without, malspam-milter, null milter"
    withouts=(); malspams=(); nulls=()
    for round in $(seq "$ROUNDS"); do
        without=$(run_case without)
        malspam=$(run_case with malspam)
        null=$(run_case with null)
        echo "round $round: without $without, malspam-milter $malspam, null milter $null messages/s"
        withouts+=("$without"); malspams+=("$malspam"); nulls+=("$null")
    done
    without=$(median "${withouts[@]}"); malspam=$(median "${malspams[@]}"); null=$(median "${nulls[@]}")
    echo "medians: without $without, malspam-milter $malspam, null milter $null messages/s"
    echo "ratio malspam/without: $(python3 -c "print(f'{$malspam / $without:.3f}')")"
    echo "ratio null/without:    $(python3 -c "print(f'{$null / $without:.3f}')")"
    echo "ratio malspam/null:    $(python3 -c "print(f'{$malspam / $null:.3f}')")"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    exit 0
fi
echo "$N messages (sizes ${SIZES[*]} bytes), $SESSIONS sessions, $ROUNDS rounds, milter: $MILTER_KIND"
# Rounds alternate the two cases, so that a neighbour's load on a shared
# machine falls on both; the medians are compared.
withouts=(); withs=()
for round in $(seq "$ROUNDS"); do
    without=$(run_case without)
    with=$(run_case with)
    echo "round $round: without milter $without messages/s, with milter $with messages/s"
    withouts+=("$without"); withs+=("$with")
done
without=$(median "${withouts[@]}")
with=$(median "${withs[@]}")
echo "without milter: $without messages/s (median)"
echo "with milter:    $with messages/s (median)"
echo "ratio with/without: $(python3 -c "print(f'{$with / $without:.3f}')")"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
