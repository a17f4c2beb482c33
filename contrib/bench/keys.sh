#!/usr/bin/env bash
# Cache hits with a small key set against a large one: does the memory
# tier's hit path stay fast when it holds a million entries instead of a
# thousand?  Random access over all keys, so the large set also pays for
# CPU cache and TLB misses, which is the point.
#
#   contrib/bench/keys.sh                        # about 2 minutes
#   LARGE=100000 ROUNDS=1 DURATION=3 contrib/bench/keys.sh   # a quick check
#
# Two Strata instances run side by side, both with route /k/*=3600s and
# --memory 4GiB in front of one bare_mhd origin (1 KiB body): one warmed
# with /k/1 .. /k/SMALL, the other with /k/1 .. /k/LARGE.  Warming walks
# the keys in order with wrk (a Lua script, many connections) until every
# key has been answered `fwd=miss; stored` once; then a random sample of
# SAMPLE keys must be hits for at least 99 % of it.  Then, in ROUNDS
# rounds alternating the order, `wrk -t1 -cCONNS -dDURATIONs` with a Lua
# script that picks a random key per request measures each instance.
#
# Run from anywhere in a built tree (it changes to the top).  Needs cc,
# pkg-config and libmicrohttpd's headers, curl (7.84 or later) and wrk.
#
# Environment:
#   SMALL=1000        keys in the small set
#   LARGE=1000000     keys in the large set
#   ROUNDS=3          measurement rounds, each measuring both instances
#   DURATION=5        seconds of wrk per measurement
#   CONNS=50          wrk connections for the measurements (one thread)
#   WARM_CONNS=100    wrk connections for the warm-up
#   WARM_TIMEOUT=300  seconds allowed for warming one instance
#   SAMPLE=1000       random keys re-requested after the warm-up
#   MEMORY=4GiB       Strata --memory
#   WORKERS=2         Strata --workers and bare_mhd threads
#   BASE_PORT=18100   first port tried; ports in use are skipped
#   STRATA_BIN=./strata
#   READY_TIMEOUT=15  seconds to wait for a server to answer
#
# The Markdown report goes to stdout; progress and warnings to stderr.
# Every process it starts is stopped on exit, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source-path=SCRIPTDIR source=lib.sh
. contrib/bench/lib.sh

SMALL=${SMALL:-1000}
LARGE=${LARGE:-1000000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
WARM_CONNS=${WARM_CONNS:-100}
WARM_TIMEOUT=${WARM_TIMEOUT:-300}
SAMPLE=${SAMPLE:-1000}
MEMORY=${MEMORY:-4GiB}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
READY_TIMEOUT=${READY_TIMEOUT:-15}

need cc pkg-config curl wrk
pkg-config --exists libmicrohttpd ||
	die "libmicrohttpd not found by pkg-config (apt-get install -y libmicrohttpd-dev)"
[ -x "$STRATA_BIN" ] ||
	die "$STRATA_BIN not found: build first (./configure && make) or set STRATA_BIN"

make_tmp
clk_tck=$(getconf CLK_TCK)

# --- wrk scripts -----------------------------------------------------------
# Warm-up: request /k/1, /k/2, ... in order over all connections, wrapping
# around after the last key (those later requests are harmless hits), and
# count the answers that stored a new entry.  When every key has stored
# one, write the marker file; the shell then stops wrk with SIGINT (wrk's
# main thread sleeps for the whole -d otherwise).
cat >"$tmp/warm.lua" <<'EOF'
local keys, marker
local next_key, stored, failed = 0, 0, 0
local tail

function init(args)
	keys = tonumber(args[1])
	marker = args[2]
	tail = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n\r\n"
end

function request()
	next_key = next_key % keys + 1
	return "GET /k/" .. next_key .. tail
end

function response(status, headers, body)
	if status ~= 200 then
		failed = failed + 1
		return
	end
	local cs = headers["Cache-Status"] or headers["cache-status"] or ""
	if cs:find("fwd=miss; stored", 1, true) then
		stored = stored + 1
		if stored % 100000 == 0 then
			io.stderr:write(string.format("keys.sh:   %d of %d keys stored\n", stored, keys))
		end
		if stored == keys then
			local f = io.open(marker, "w")
			f:write(stored, " ", failed, "\n")
			f:close()
		end
	end
end
EOF

# Measurement: one random key per request.
cat >"$tmp/random.lua" <<'EOF'
local keys, tail

function init(args)
	keys = tonumber(args[1])
	math.randomseed(tonumber(args[2]))
	tail = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n\r\n"
end

function request()
	return "GET /k/" .. math.random(keys) .. tail
end
EOF

# --- servers ---------------------------------------------------------------
declare -A pid port keys_of
keys_of[small]=$SMALL
keys_of[large]=$LARGE

read -r -a mhd_flags <<<"$(pkg-config --cflags --libs libmicrohttpd)"
cc -O2 -Wall -o "$tmp/bare_mhd" contrib/bench/bare_mhd.c "${mhd_flags[@]}" ||
	die "cannot build contrib/bench/bare_mhd.c"

alloc_port 'port[origin]'
"$tmp/bare_mhd" "${port[origin]}" 1024 "$WORKERS" >"$tmp/origin.log" 2>&1 &
pid[origin]=$!
started+=("${pid[origin]}")
wait_ready origin "${pid[origin]}" "http://127.0.0.1:${port[origin]}/"

admin=
for name in small large; do
	alloc_port "port[$name]"
	alloc_port admin
	"$STRATA_BIN" --upstream "http://127.0.0.1:${port[origin]}" \
		--listen "127.0.0.1:${port[$name]}" \
		--admin-listen "127.0.0.1:$admin" --workers "$WORKERS" \
		--route '/k/*=3600s' --set access_log=false --set cache.disk.enabled=false --memory "$MEMORY" \
		>"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	started+=("${pid[$name]}")
done
for name in small large; do
	# Outside the route: proxied, not stored.
	wait_ready "$name" "${pid[$name]}" "http://127.0.0.1:${port[$name]}/ready"
done

# --- warm-up ---------------------------------------------------------------
# warm NAME: fill every key of NAME once; sets warm_secs[NAME].
declare -A warm_secs rss_mib hit_pct
warm() {
	local name=$1 n=${keys_of[$1]} marker="$tmp/warm-$1.done" out="$tmp/warm-$1.out"
	local wrk_pid start verdict
	log "$name: warming $n keys with $WARM_CONNS connections"
	start=$(date +%s.%N)
	wrk -t1 -c"$WARM_CONNS" -d"${WARM_TIMEOUT}s" -s "$tmp/warm.lua" \
		"http://127.0.0.1:${port[$name]}/" -- "$n" "$marker" >"$out" &
	wrk_pid=$!
	started+=("$wrk_pid")
	while [ ! -s "$marker" ] && kill -0 "$wrk_pid" 2>/dev/null; do
		sleep 0.2
	done
	# SIGINT is wrk's "stop now and print the totals".
	kill -INT "$wrk_pid" 2>/dev/null || true
	wait "$wrk_pid" || true
	forget "$wrk_pid"
	warm_secs[$name]=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
	if [ ! -s "$marker" ]; then
		warn "$name: warm-up did not store all $n keys within ${WARM_TIMEOUT}s: $(tr '\n' ' ' <"$out")"
	fi
	if ! kill -0 "${pid[$name]}" 2>/dev/null; then
		show_log "$name"
		die "$name: exited during the warm-up"
	fi
	rss_mib[$name]=$(($(tree_rss_kib "${pid[$name]}") / 1024))
	log "$name: warmed in ${warm_secs[$name]}s, $(awk '/requests in/ { print $1 }' "$out") requests, RSS ${rss_mib[$name]} MiB"

	# The check: a random sample of keys must be hits, over one keep-alive
	# connection; curl prints each answer's Cache-Status.
	awk -v n="$n" -v s="$SAMPLE" -v port="${port[$name]}" -v seed="$RANDOM" 'BEGIN {
		srand(seed)
		for (i = 0; i < s; i++) {
			printf "url = \"http://127.0.0.1:%s/k/%d\"\n", port, 1 + int(rand() * n)
			print "output = \"/dev/null\""
		}
	}' >"$tmp/sample-$name.curl"
	curl -s -K "$tmp/sample-$name.curl" -w '%header{cache-status}\n' \
		>"$tmp/sample-$name.out" || die "$name: the sample requests failed"
	hit_pct[$name]=$(awk '/^strata; hit/ { h++ } END { printf "%.1f", 100 * h / NR }' "$tmp/sample-$name.out")
	verdict=$(awk '/^strata; hit/ { h++ } END { print ((h >= 0.99 * NR) ? "ok" : "low") }' "$tmp/sample-$name.out")
	if [ "$verdict" = ok ]; then
		log "$name: ${hit_pct[$name]} % of $SAMPLE random keys are hits"
	else
		warn "$name: only ${hit_pct[$name]} % of $SAMPLE random keys are hits ($(grep -v '^strata; hit' "$tmp/sample-$name.out" | sort | uniq -c | sort -rn | head -n 3 | tr -s ' \n' ' '))"
	fi
}

for name in small large; do
	warm "$name"
done

# --- measurements ----------------------------------------------------------
# measure NAME: one wrk run; appends "req/s cpu_us_per_req" to
# $tmp/results/NAME.
measure() {
	local name=$1 out="$tmp/wrk.out" before after requests run_rps errors
	before=$(tree_ticks "${pid[$name]}")
	wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$tmp/random.lua" \
		"http://127.0.0.1:${port[$name]}/" -- "${keys_of[$name]}" "$RANDOM" \
		>"$out" 2>&1 || die "$name: wrk failed: $(cat "$out")"
	after=$(tree_ticks "${pid[$name]}")
	if ! kill -0 "${pid[$name]}" 2>/dev/null || [ "$after" -lt "$before" ]; then
		show_log "$name"
		die "$name: exited during the run"
	fi
	requests=$(awk '/requests in/ { print $1 }' "$out")
	run_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ -z "$run_rps" ]; then
		die "$name: cannot read wrk's output: $(cat "$out")"
	fi
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name: $(tr '\n' ' ' <<<"$errors")"
	echo "$run_rps $(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
		'BEGIN { printf "%.2f", t * 1000000 / hz / n }')" >>"$tmp/results/$name"
	log "$name: $(tail -n 1 "$tmp/results/$name") (req/s, CPU µs/req)"
}

mkdir -p "$tmp/results"
for ((round = 0; round < ROUNDS; round++)); do
	log "round $((round + 1))/$ROUNDS"
	if ((round % 2 == 0)); then
		measure small
		measure large
	else
		measure large
		measure small
	fi
done

# --- report ----------------------------------------------------------------
declare -A rps spread cpu
for name in small large; do
	runs="$tmp/results/$name"
	rps[$name]=$(cut -d' ' -f1 "$runs" | median)
	spread[$name]=$(cut -d' ' -f1 "$runs" | sort -g |
		awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')
	cpu[$name]=$(cut -d' ' -f2 "$runs" | median)
done

echo "## Hits with $SMALL keys against $LARGE keys"
echo
echo "- machine: $(machine_line)"
echo "- strata: $(version_of "$STRATA_BIN" --version), --workers $WORKERS --memory $MEMORY --route '/k/*=3600s'"
echo "- origin: bare_mhd, 1 KiB body; keys /k/1 .. /k/N, warmed in order, then $SAMPLE random keys re-requested"
echo "- load: $(version_of wrk -v | awk '{ print $1, $2 }'), 1 thread, $CONNS connections, a random key per request (Lua), ${DURATION}s per run, $ROUNDS round(s) alternating the order, medians shown"
echo
echo "| keys | warm-up (s) | RSS after warm-up (MiB) | sample hits | req/s | req/s min–max | CPU µs/request |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
for name in small large; do
	awk -v k="${keys_of[$name]}" -v w="${warm_secs[$name]}" -v m="${rss_mib[$name]}" \
		-v h="${hit_pct[$name]}" -v r="${rps[$name]}" -v s="${spread[$name]}" -v c="${cpu[$name]}" \
		'BEGIN { printf "| %d | %s | %d | %s %% | %.0f | %s | %.2f |\n", k, w, m, h, r, s, c }'
done
echo
awk -v rs="${rps[small]}" -v rl="${rps[large]}" -v cs="${cpu[small]}" -v cl="${cpu[large]}" \
	'BEGIN {
		printf "Large/small: %.2f× the req/s (target ≥ 0.8), %.2f× the CPU per request.\n",
			rl / rs, (cs > 0 ? cl / cs : 0)
	}'
echo
echo "wrk (one thread, Lua per request) shares the $(nproc) CPUs with Strata, so req/s understates a difference in Strata's own cost; CPU per request is the steadier figure."
