#!/usr/bin/env bash
# Soak: the quickstart example publishing to the receiver example for an hour (by default),
# sampling both processes' resident memory and CPU over time. Linux (reads /proc).
#
#   scripts/soak.sh                         # 3600 s, a sample every 60 s, release build
#   scripts/soak.sh --seconds 300 --interval 10 --profile dev
#
# Prints one line per sample and a summary; the samples also go to a CSV file
# (target/soak/soak-<time>.csv; --out FILE to choose). Columns: seconds since start, then for
# the quickstart and the receiver: RSS in KiB, CPU % over the last interval (100 = one core),
# threads. The run is a pass when the quickstart's RSS in the last quarter of the run is at
# most its RSS after warm-up (the first quarter) plus --rss-slack KiB (default 8192): memory
# that keeps growing at a steady load is a leak.
#
# Both processes listen and send on 127.0.0.1 only, and are stopped at the end (or on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=3600
interval=60
profile=release
out=""
rss_slack=8192
frequency=5
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --interval) interval="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --rss-slack) rss_slack="$2"; shift 2 ;;
    --frequency) frequency="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

target="${CARGO_TARGET_DIR:-target}"
dir="$target/$([ "$profile" = dev ] && echo debug || echo "$profile")/examples"
echo "== building the examples ($profile)"
cargo build --profile "$profile" --example receiver --example quickstart

mkdir -p "$target/soak"
[ -n "$out" ] || out="$target/soak/soak-$(date -u +%Y%m%dT%H%M%SZ).csv"
log="${out%.csv}.receiver.log"
qlog="${out%.csv}.quickstart.log"

receiver_pid=""
quickstart_pid=""
cleanup() {
  for p in $quickstart_pid $receiver_pid; do
    kill "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# The receiver on a free port; it prints the URI to publish to.
: >"$log"
"$dir/receiver" --port 0 --step "$frequency" --seconds $((seconds + 60)) >"$log" 2>&1 &
receiver_pid=$!
uri=""
for _ in $(seq 1 100); do
  uri="$(grep -o 'SPECTATOR_URI=[^ ]*' "$log" | head -n1 | cut -d= -f2- || true)"
  [ -n "$uri" ] && break
  sleep 0.1
done
[ -n "$uri" ] || { echo "the receiver did not start:" >&2; cat "$log" >&2; exit 1; }
echo "== receiver (pid $receiver_pid) at $uri"

SPECTATOR_URI="$uri" SPECTATOR_FREQUENCY="$frequency" \
  "$dir/quickstart" --seconds "$seconds" >"$qlog" 2>&1 &
quickstart_pid=$!
echo "== quickstart (pid $quickstart_pid) for $seconds s; a sample every $interval s -> $out"

ticks="$(getconf CLK_TCK)"
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }
threads() { awk '/^Threads:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

echo "seconds,quickstart_rss_kib,quickstart_cpu_pct,quickstart_threads,receiver_rss_kib,receiver_cpu_pct,receiver_threads" >"$out"
start=$(date +%s.%N)
q_prev=$(cpu_ticks "$quickstart_pid"); r_prev=$(cpu_ticks "$receiver_pid"); t_prev=$start
while kill -0 "$quickstart_pid" 2>/dev/null; do
  sleep "$interval"
  kill -0 "$quickstart_pid" 2>/dev/null || break
  now=$(date +%s.%N)
  q=$(cpu_ticks "$quickstart_pid"); r=$(cpu_ticks "$receiver_pid")
  line=$(awk -v s="$start" -v n="$now" -v tp="$t_prev" -v q="$q" -v qp="$q_prev" -v r="$r" -v rp="$r_prev" \
             -v hz="$ticks" -v qr="$(rss_kib "$quickstart_pid")" -v qt="$(threads "$quickstart_pid")" \
             -v rr="$(rss_kib "$receiver_pid")" -v rt="$(threads "$receiver_pid")" \
    'BEGIN { w = n - tp; printf "%d,%d,%.1f,%d,%d,%.1f,%d", n - s, qr, 100 * (q - qp) / hz / w, qt, rr, 100 * (r - rp) / hz / w, rt }')
  echo "$line" >>"$out"
  echo "$line"
  q_prev=$q; r_prev=$r; t_prev=$now
done
wait "$quickstart_pid" && status=0 || status=$?
echo "== quickstart exited with status $status"

# Summary: RSS after warm-up (first quarter) against the last quarter; mean CPU.
awk -F, -v slack="$rss_slack" -v total="$seconds" '
  NR == 1 { next }
  { n++; t[n] = $1; rss[n] = $2; cpu += $3; rcpu += $6; if ($2 > max) max = $2 }
  END {
    if (n < 4) { print "too few samples for a verdict (" n "): use a longer run or a shorter --interval"; exit 0 }
    q = int(n / 4); warm = 0; late = 0
    for (i = 1; i <= q; i++) if (rss[i] > warm) warm = rss[i]
    for (i = n - q + 1; i <= n; i++) if (rss[i] > late) late = rss[i]
    printf "samples: %d; quickstart RSS: %d KiB after warm-up, %d KiB in the last quarter, %d KiB max; mean CPU: quickstart %.1f%%, receiver %.1f%%\n", n, warm, late, max, cpu / n, rcpu / n
    if (late > warm + slack) { printf "FAIL: RSS grew by %d KiB (more than %d)\n", late - warm, slack; exit 1 }
    print "PASS: RSS stayed bounded"
  }' "$out"
[ "$status" = 0 ]
