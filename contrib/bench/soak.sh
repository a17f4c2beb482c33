#!/usr/bin/env bash
# Soak: Strata under steady mixed load for a long time, with purges and
# configuration reloads, watching for errors, memory growth and descriptor
# leaks.
#
#   contrib/bench/soak.sh                        # 10 minutes, as documented
#   DURATION=60 RELOAD_EVERY=20 contrib/bench/soak.sh   # a quick check
#
# What runs (all on loopback, every process started here and stopped on
# exit, by PID):
#   - an origin answering every request at once with BODY bytes
#     (bare_mhd.c, built here: a Python origin would take the CPU the
#     misses need);
#   - strata with the memory and disk tiers, one route /k/* with a 60s TTL,
#     and its configuration in a file it re-reads on SIGHUP;
#   - a calibration run: wrk at full speed on cached keys for CALIBRATE
#     seconds gives the peak hit rate;
#   - the soak: wrk at RATE_PCT% of that peak (a fixed rate, paced by
#     soak.lua's delay()), 95% hits on a hot set of KEYS keys and 5% misses
#     on keys never asked before.  Each connection waits PACE_MS after each
#     answer, so the rate also depends on latency: up to PILOTS runs of
#     PILOT seconds measure the rate a number of connections gives, and
#     scale it by target / measured (at most 4x) until within 5%;
#   - purges: DELETE /admin/keys?path=/k/N on the admin port, for PURGE_PCT%
#     of the request rate, each on a random hot key (which the next request
#     for it fetches again);
#   - a reload every RELOAD_EVERY seconds: the file's TTL flips between 60s
#     and 59s, then SIGHUP;
#   - every SAMPLE seconds: strata's resident memory and open descriptors.
#
# The report (Markdown, stdout): requests, rate, errors (non-2xx answers
# and socket errors from wrk, failed purges and reloads), latency, resident
# memory after warm-up (first and last minute) and its drift, descriptors
# (min, max).  The exit status is 1 when any request failed, memory drifted
# by more than 5% after warm-up, or descriptors grew.
#
# Environment (defaults): MEMORY=16MiB DISK_SIZE=32MiB (the tiers, small
# enough to be full, and evicting, after warm-up) DURATION=600 CALIBRATE=10
# PILOT=10 PILOTS=4 RATE_PCT=80 KEYS=1000 BODY=1024 CONNS=50 (calibration)
# PACE_MS=1 PURGE_PCT=1 RELOAD_EVERY=60 SAMPLE=10 WARMUP=60 WORKERS=2
# WRK_THREADS=2 STRATA_BIN=./strata BASE_PORT=18400 KEEP_LOG (a path: keep
# strata's log there, and its /metrics at the end in KEEP_LOG.metrics).
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source-path=SCRIPTDIR source=lib.sh
. contrib/bench/lib.sh

DURATION=${DURATION:-600}
CALIBRATE=${CALIBRATE:-10}
PILOT=${PILOT:-10}
PILOTS=${PILOTS:-4}
BODY=${BODY:-1024}
RATE_PCT=${RATE_PCT:-80}
KEYS=${KEYS:-1000}
CONNS=${CONNS:-50}
PURGE_PCT=${PURGE_PCT:-1}
RELOAD_EVERY=${RELOAD_EVERY:-60}
SAMPLE=${SAMPLE:-10}
WARMUP=${WARMUP:-60}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
WRK_THREADS=${WRK_THREADS:-2}
# Small tiers, so that the misses' new entries fill them during warm-up
# and memory is then at its steady state (evicting), not still growing.
MEMORY=${MEMORY:-16MiB}
DISK_SIZE=${DISK_SIZE:-32MiB}

need wrk curl python3 cc pkg-config
[ -x "$STRATA_BIN" ] || die "$STRATA_BIN not found: build first (make)"
((DURATION > WARMUP + 2 * SAMPLE)) ||
	die "DURATION must exceed WARMUP + 2 x SAMPLE"
pkg-config --exists libmicrohttpd ||
	die "libmicrohttpd not found by pkg-config (apt-get install -y libmicrohttpd-dev)"
make_tmp
read -r -a mhd_flags <<<"$(pkg-config --cflags --libs libmicrohttpd)"
cc -O2 -Wall -o "$tmp/bare_mhd" contrib/bench/bare_mhd.c "${mhd_flags[@]}" ||
	die "cannot build contrib/bench/bare_mhd.c"

origin_port='' strata_port='' admin_port=''
alloc_port origin_port
alloc_port strata_port
alloc_port admin_port

"$tmp/bare_mhd" "$origin_port" "$BODY" 1 >"$tmp/origin.log" 2>&1 &
started+=($!)
origin_pid=$!

write_conf() {
	cat >"$tmp/strata.yaml" <<EOF
listen: 127.0.0.1:$strata_port
workers: $WORKERS
access_log: false
log:
  level: info
admin:
  listen: 127.0.0.1:$admin_port
upstream:
  url: http://127.0.0.1:$origin_port
cache:
  memory: $MEMORY
  disk:
    path: $tmp/disk
    size: $DISK_SIZE
routes:
  - path: /k/*
    ttl: $1
EOF
}
write_conf 60s
"$STRATA_BIN" -c "$tmp/strata.yaml" >"$tmp/strata.log" 2>&1 &
started+=($!)
strata_pid=$!
wait_ready origin "$origin_pid" "http://127.0.0.1:$origin_port/"
wait_ready strata "$strata_pid" "http://127.0.0.1:$strata_port/k/0"

# The load: hot keys /k/0../k/KEYS-1, misses /k/m-<thread>-<n>, paced by
# delay() at RATE requests per second over all connections.
cat >"$tmp/soak.lua" <<'EOF'
local keys = tonumber(os.getenv("SOAK_KEYS"))
local pace_ms = tonumber(os.getenv("SOAK_PACE_MS"))
-- `id` is each thread's own global, set by setup().
local n = 0
local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("id", threads)
end
function init(args)
	math.randomseed(os.time() + (id or 0) * 7919)
end
function delay()
	return pace_ms
end
function request()
	n = n + 1
	if n % 20 == 0 then
		return wrk.format("GET", "/k/m-" .. (id or 0) .. "-" .. n)
	end
	return wrk.format("GET", "/k/" .. math.random(0, keys - 1))
end
function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("SOAK requests=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
		summary.requests, e.status, e.connect, e.read, e.write,
		e.timeout, latency:percentile(50), latency:percentile(99)))
end
EOF

log "warming $KEYS keys"
for ((i = 0; i < KEYS; i++)); do
	printf 'url = "http://127.0.0.1:%s/k/%s"\noutput = "/dev/null"\n' \
		"$strata_port" "$i"
done >"$tmp/warm.curl"
curl -sS --no-progress-meter -K "$tmp/warm.curl" --parallel \
	--parallel-max 32

log "calibrating: ${CALIBRATE}s at full speed on cached keys"
SOAK_KEYS=$KEYS SOAK_PACE_MS=0 wrk -t"$WRK_THREADS" -c"$CONNS" -d"${CALIBRATE}s" \
	-s "$tmp/soak.lua" "http://127.0.0.1:$strata_port" >"$tmp/calibrate.out"
peak=$(awk '/^Requests\/sec/ { printf "%d", $2 }' "$tmp/calibrate.out")
if [ -z "$peak" ] || ((peak <= 0)); then
	die "calibration failed: $(cat "$tmp/calibrate.out")"
fi
rate=$((peak * RATE_PCT / 100))
# Each connection waits PACE_MS between requests, so the rate is set by
# the number of connections, and by latency on top: first as if latency
# were nothing, then corrected by a pilot run's measured rate.
pace_ms=${PACE_MS:-1}
soak_conns=$((rate * pace_ms / 1000))
((soak_conns >= 1)) || soak_conns=1
fds() { find "/proc/$strata_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
sleep 2
fd_before=$(fds)

# Purges: PURGE_PCT% of the request rate, each a path purge of a hot key,
# until the stop file appears.
purge_rate=$((rate * PURGE_PCT / 100))
((purge_rate >= 1)) || purge_rate=1
python3 - "$admin_port" "$KEYS" "$purge_rate" "$tmp/stop-purges" >"$tmp/purges" 2>&1 <<'EOF' &
import http.client, os, random, sys, time
port, keys, rate = (int(a) for a in sys.argv[1:4])
stop = sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
ok = bad = 0
start = time.monotonic()
while not os.path.exists(stop):
    due = start + (ok + bad) / rate
    if due > time.monotonic():
        time.sleep(due - time.monotonic())
    try:
        conn.request("DELETE", "/admin/keys?path=/k/%d" % random.randrange(keys))
        r = conn.getresponse()
        r.read()
        if r.status == 200:
            ok += 1
        else:
            bad += 1
    except Exception:
        bad += 1
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
print("purges ok=%d failed=%d" % (ok, bad))
EOF
started+=($!)
purger_pid=$!

# Reloads: flip the TTL and SIGHUP every RELOAD_EVERY seconds.
reloader() {
	local n=0 ttl
	while sleep "$RELOAD_EVERY"; do
		n=$((n + 1))
		if ((n % 2)); then ttl=59s; else ttl=60s; fi
		write_conf "$ttl"
		kill -HUP "$strata_pid" || break
		echo "reload $n ttl=$ttl"
	done >"$tmp/reloads"
}
reloader &
started+=($!)
reloader_pid=$!

# The pilots run with the purges and reloads going, as the soak will.
pilot=''
for ((round = 1; round <= PILOTS; round++)); do
	SOAK_KEYS=$KEYS SOAK_PACE_MS=$pace_ms wrk -t"$WRK_THREADS" -c"$soak_conns" -d"${PILOT}s" \
		--timeout 5s -s "$tmp/soak.lua" "http://127.0.0.1:$strata_port" >"$tmp/pilot.out"
	pilot=$(awk '/^Requests\/sec/ { printf "%d", $2 }' "$tmp/pilot.out")
	if [ -z "$pilot" ] || ((pilot <= 0)); then
		break
	fi
	log "pilot $round: ${PILOT}s with ${soak_conns} connections, one request per ${pace_ms} ms each: ${pilot} req/s"
	# Within 5% of the target: keep this number.
	((pilot * 100 < rate * 95 || pilot * 100 > rate * 105)) || break
	scaled=$((soak_conns * rate / pilot))
	((scaled <= soak_conns * 4)) || scaled=$((soak_conns * 4))
	((scaled >= 1)) || scaled=1
	soak_conns=$scaled
done
log "peak ${peak} req/s; soak at ${RATE_PCT}% = ${rate} req/s with ${soak_conns} connections for ${DURATION}s"

# Samples: seconds, RSS KiB, descriptors.
sampler() {
	local t=0
	while kill -0 "$strata_pid" 2>/dev/null; do
		printf '%s %s %s\n' "$t" \
			"$(awk '/^VmRSS/ { print $2 }' "/proc/$strata_pid/status")" \
			"$(fds)"
		sleep "$SAMPLE"
		t=$((t + SAMPLE))
	done >"$tmp/samples"
}
sampler &
started+=($!)

SOAK_KEYS=$KEYS SOAK_PACE_MS=$pace_ms wrk -t"$WRK_THREADS" -c"$soak_conns" -d"${DURATION}s" \
	--timeout 5s -s "$tmp/soak.lua" "http://127.0.0.1:$strata_port" \
	>"$tmp/soak.out" 2>&1 || true
touch "$tmp/stop-purges"
wait "$purger_pid" || true
kill "$reloader_pid" 2>/dev/null || true
curl -sS "http://127.0.0.1:$admin_port/metrics" >"$tmp/metrics" 2>&1 || true
# Idle again: every client connection closed, as before the soak.
sleep 2
fd_after=$(fds)

# --- report ---------------------------------------------------------------
read -r requests non2xx e_conn e_read e_write e_timeout p50 p99 < <(
	sed -n 's/^SOAK //p' "$tmp/soak.out" |
		sed 's/[a-z0-9_]*=//g')
[ -n "${requests:-}" ] || die "wrk gave no summary: $(cat "$tmp/soak.out")"
purges=$(cat "$tmp/purges")
reloads=$(grep -c '^reload' "$tmp/reloads" || true)
refused=$(grep -c 'reload refused' "$tmp/strata.log" || true)
applied=$(grep -c 'reload: generation' "$tmp/strata.log" || true)
# After warm-up: the first and last minute of samples.
read -r rss_first rss_last rss_min rss_max fd_min fd_max fd_first fd_last < <(
	awk -v w="$WARMUP" -v d="$DURATION" '
		$1 >= w { n++; t[n] = $1; r[n] = $2; f[n] = $3 }
		END {
			for (i = 1; i <= n; i++) {
				if (t[i] < w + 60) {
					a += r[i]; na++
					if (f[i] > ff) ff = f[i]
				}
				if (t[i] >= d - 60) {
					b += r[i]; nb++
					if (f[i] > fl) fl = f[i]
				}
				if (rmin == "" || r[i] < rmin) rmin = r[i]
				if (r[i] > rmax) rmax = r[i]
				if (fmin == "" || f[i] < fmin) fmin = f[i]
				if (f[i] > fmax) fmax = f[i]
			}
			printf "%d %d %d %d %d %d %d %d\n", a / (na ? na : 1),
				b / (nb ? nb : 1), rmin, rmax, fmin, fmax,
				ff, fl
		}' "$tmp/samples")
drift=$(awk -v a="$rss_first" -v b="$rss_last" \
	'BEGIN { printf "%.1f", a ? (b - a) * 100 / a : 0 }')
errors=$((non2xx + e_conn + e_read + e_write + e_timeout))

cat <<EOF
## Soak ($(date -u +%Y-%m-%d), ${DURATION}s)

$(machine_line)

| | |
|---|---|
| peak hit rate (calibration, ${CALIBRATE}s) | ${peak} req/s |
| target rate (${RATE_PCT}%) | ${rate} req/s (${soak_conns} connections, ${pace_ms} ms between requests; the last ${PILOT}s pilot gave ${pilot:-?} req/s) |
| requests | ${requests} ($((requests / DURATION)) req/s, $((requests * 100 / DURATION / peak))% of peak), 5% misses of ${BODY} bytes |
| errors | ${errors} (non-2xx ${non2xx}, connect ${e_conn}, read ${e_read}, write ${e_write}, timeout ${e_timeout}) |
| latency | p50 ${p50} µs, p99 ${p99} µs |
| purges | ${purges} |
| reloads | ${reloads} sent, ${applied} applied, ${refused} refused |
| resident memory after ${WARMUP}s | first minute ${rss_first} KiB, last minute ${rss_last} KiB (drift ${drift}%), range ${rss_min}–${rss_max} KiB |
| open descriptors | ${fd_before} idle before; under load ${fd_min}–${fd_max}, at most ${fd_first} in the first minute after warm-up and ${fd_last} in the last; ${fd_after} idle after |
EOF

status=0
((errors == 0)) || status=1
awk -v d="$drift" 'BEGIN { exit (d > 5 || d < -5) }' || status=1
# Upstream keep-alive connections grow with the misses' concurrency up to
# upstream.max_connections, so the idle count after may exceed the one
# before; a leak shows as growth from the first minute to the last.
((fd_last <= fd_first + 4)) || status=1
((refused == 0)) || status=1
case $purges in *failed=0) ;; *) status=1 ;; esac
if [ -n "${KEEP_LOG:-}" ]; then
	cp "$tmp/strata.log" "$KEEP_LOG"
	cp "$tmp/metrics" "$KEEP_LOG.metrics"
fi
exit "$status"
