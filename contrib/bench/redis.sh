#!/usr/bin/env bash
# The Redis tier (tier 3): how fast Strata serves hits out of Redis next to
# memory hits, what Redis itself can do on the same machine, and how much
# latency asking Redis adds to a miss.
#
#   contrib/bench/redis.sh                          # about 4 minutes
#   ROUNDS=1 DURATION=2 POOLS="1 8" contrib/bench/redis.sh   # a quick check
#
# Everything runs on 127.0.0.1: one redis-server started by the script on a
# free port (--save '' --appendonly no), one bare_mhd origin (SIZE-byte
# body, Cache-Control: max-age=3600) and the Strata instances below, all
# with --workers WORKERS, route /obj=3600s, the disk tier off and no access
# log.
#
# hits: "memory" has the memory tier only (no Redis): the baseline.  One
#   "redis-pN" per N in POOLS has --set cache.memory=0 (nothing fits, so the
#   memory tier stores nothing), the disk tier off and cache.redis.url
#   pointing at the script's Redis with cache.redis.pool=N: every hit is a
#   Redis GET.  Two key sets are measured:
#   - one key: wrk requests /obj.  Concurrent misses of one key join one
#     flight, so Redis GETs of one key are shared by whichever requests of
#     the same key arrive while one is in flight: the script counts the
#     GETs Redis served (INFO commandstats) per request.
#   - KEYS keys: wrk with a Lua script requests /obj?k=<random 1..KEYS>, so
#     concurrent requests rarely share a key and nearly every request is a
#     GET of its own.
#   Each is warmed (and, for Redis, waited for until the entries exist in
#   Redis, `redis-cli --scan --pattern 'strata:e:*'`); one request per
#   instance must answer `Cache-Status: strata; hit; ...; detail=redis`
#   (detail=memory for "memory"), before the runs and after each one.  Then
#   ROUNDS rounds, rotating the order, of `wrk -t1 -cCONNS -dDURATIONs
#   --latency`: req/s, p50, p99, Strata's and Redis's CPU per request.
#   Target: Redis hits ≥ 0.50× memory hits in req/s.
# ceiling: `redis-benchmark -p PORT -t get -n 200000 -c 50 -q`, and the
#   same with -P 16, ROUNDS times each, against the same redis-server, with
#   the key redis-benchmark reads (key:__rand_int__) set to a value the
#   size of one stored Strata entry: what Redis alone serves on this
#   machine, with no HTTP and no Strata.
# miss: two more instances with the memory tier on (its default budget)
#   and the disk tier off, "no-redis" without Redis and "with-redis" with it
#   (default pool); wrk -t1 -cMISS_CONNS with a Lua script that appends a
#   run id and a counter (?m=R-N) so every request is a new key, a miss
#   fetched from the origin and stored.  ROUNDS rounds alternating the
#   order: p50 and p99 latency of a miss with and without Redis, and the
#   difference, with the Redis commands each miss cost.
#
# Run from anywhere in a built tree (it changes to the top).  Needs cc,
# pkg-config and libmicrohttpd's headers, curl (7.84 or later), wrk,
# redis-server, redis-cli and redis-benchmark
# (apt-get install -y redis-server redis-tools wrk).
#
# Environment:
#   PARTS="hits ceiling miss"  what to run
#   ROUNDS=3          rounds; medians are reported
#   DURATION=5        seconds of wrk per run
#   CONNS=50          wrk connections for the hits (one thread)
#   MISS_CONNS=1      wrk connections for the misses: 1 = unloaded latency
#   SIZE=1024         body size in bytes
#   KEYS=10000        keys of the many-key hit runs
#   POOLS="1 2 4 8"   cache.redis.pool values measured for the hits
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

PARTS=${PARTS:-hits ceiling miss}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
MISS_CONNS=${MISS_CONNS:-1}
SIZE=${SIZE:-1024}
KEYS=${KEYS:-10000}
POOLS=${POOLS:-1 2 4 8}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
READY_TIMEOUT=${READY_TIMEOUT:-15}

need cc pkg-config curl wrk redis-server redis-cli redis-benchmark
pkg-config --exists libmicrohttpd ||
	die "libmicrohttpd not found by pkg-config (apt-get install -y libmicrohttpd-dev)"
[ -x "$STRATA_BIN" ] ||
	die "$STRATA_BIN not found: build first (./configure && make) or set STRATA_BIN"
for part in $PARTS; do
	case $part in
	hits | ceiling | miss) ;;
	*) die "PARTS: unknown part \"$part\" (use hits, ceiling, miss)" ;;
	esac
done
wants() { [[ " $PARTS " == *" $1 "* ]]; }
[ -n "${POOLS// /}" ] || die "POOLS: at least one cache.redis.pool value"
for n in $POOLS; do
	if ! [[ $n =~ ^[0-9]+$ ]] || ((n < 1 || n > 64)); then
		die "POOLS: \"$n\" is not a cache.redis.pool value (1..64)"
	fi
done

make_tmp
clk_tck=$(getconf CLK_TCK)

# As in disk.sh: run .libs/strata directly rather than libtool's wrapper
# script, so that $! (and a profiler attached to it) is Strata itself.
strata_real=$STRATA_BIN
strata_libs=
if grep -qs 'temporary wrapper script for' "$STRATA_BIN"; then
	strata_real="$(dirname "$STRATA_BIN")/.libs/$(basename "$STRATA_BIN")"
	strata_libs="$PWD/.libs"
	[ -x "$strata_real" ] || die "$STRATA_BIN is a libtool wrapper but $strata_real is missing"
fi

# strata_exec ARG...: exec Strata (call it in the background: `... &`).
strata_exec() {
	[ -z "$strata_libs" ] ||
		export LD_LIBRARY_PATH="$strata_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	exec "$strata_real" "$@"
}

read -r -a mhd_flags <<<"$(pkg-config --cflags --libs libmicrohttpd)"
cc -O2 -Wall -o "$tmp/bare_mhd" contrib/bench/bare_mhd.c "${mhd_flags[@]}" ||
	die "cannot build contrib/bench/bare_mhd.c"

# --- wrk scripts -----------------------------------------------------------
# Hits on many keys: a random key of 1..KEYS per request.
cat >"$tmp/random.lua" <<'EOF'
local keys, tail

function init(args)
	keys = tonumber(args[1])
	math.randomseed(tonumber(args[2]))
	tail = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n\r\n"
end

function request()
	return "GET /obj?k=" .. math.random(keys) .. tail
end
EOF

# Misses: a new key per request (the run id keeps runs apart).
cat >"$tmp/miss.lua" <<'EOF'
local run, n, tail = "", 0, ""

function init(args)
	run = args[1]
	tail = " HTTP/1.1\r\nHost: " .. wrk.host .. ":" .. wrk.port .. "\r\n\r\n"
end

function request()
	n = n + 1
	return "GET /obj?m=" .. run .. "-" .. n .. tail
end
EOF

# --- servers ---------------------------------------------------------------
declare -A pid port

start_redis() {
	alloc_port 'port[redis-server]'
	redis-server --port "${port[redis-server]}" --bind 127.0.0.1 --save '' \
		--appendonly no --dir "$tmp" --logfile "$tmp/redis.log" \
		>/dev/null 2>&1 &
	pid[redis-server]=$!
	started+=("${pid[redis-server]}")
	local i
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		[ "$(rcli ping 2>/dev/null)" != PONG ] || return 0
		kill -0 "${pid[redis-server]}" 2>/dev/null || {
			show_log redis
			die "redis-server exited at start"
		}
		sleep 0.1
	done
	show_log redis
	die "redis-server did not answer PING within ${READY_TIMEOUT}s"
}

# rcli ARG...: redis-cli against the script's Redis.
rcli() { redis-cli -h 127.0.0.1 -p "${port[redis-server]}" "$@"; }

start_origin() {
	alloc_port 'port[origin]'
	"$tmp/bare_mhd" "${port[origin]}" "$SIZE" "$WORKERS" >"$tmp/origin.log" 2>&1 &
	pid[origin]=$!
	started+=("${pid[origin]}")
	wait_ready origin "${pid[origin]}" "http://127.0.0.1:${port[origin]}/"
}

# start_strata NAME [ARG...]: Strata in front of the origin, disk tier off.
start_strata() {
	local name=$1 admin
	shift
	alloc_port "port[$name]"
	alloc_port admin
	strata_exec --upstream "http://127.0.0.1:${port[origin]}" \
		--listen "127.0.0.1:${port[$name]}" \
		--admin-listen "127.0.0.1:$admin" --workers "$WORKERS" \
		--route '/obj=3600s' --set access_log=false --set cache.disk=off \
		"$@" >"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	started+=("${pid[$name]}")
	# Outside the route: proxied, never stored.
	wait_ready "$name" "${pid[$name]}" "http://127.0.0.1:${port[$name]}/ready"
}

redis_url() { echo "redis://127.0.0.1:${port[redis-server]}"; }

# cache_status URL: the Cache-Status of one GET (empty when there is none).
cache_status() {
	curl -sf -o /dev/null --max-time 5 -w '%header{cache-status}' "$1"
}

# redis_entries: how many stored entries Redis holds.
redis_entries() { rcli --scan --pattern 'strata:e:*' | wc -l; }

# redis_calls: "GETs commands" served by Redis so far, commands counting
# only what requests cause (not INFO, SCAN, the fleet's XREAD, ...).
redis_calls() {
	rcli info commandstats | tr -d '\r' | awk -F'[:=,]' '
		/^cmdstat_/ {
			cmd = substr($1, 9)
			if (cmd == "get") g = $3
			if (cmd !~ /^(info|xread|scan|ping|config|client|hello|dbsize|strlen|select|auth)/)
				t += $3
		}
		END { print g + 0, t + 0 }'
}

# redis_mix BEFORE AFTER: the commands between two INFO commandstats
# snapshots (files), per command, e.g. "get 3 set 2".
redis_mix() {
	awk -F'[:=,]' '
		FNR == 1 { f++ }
		/^cmdstat_/ {
			cmd = substr($1, 9)
			if (cmd ~ /^(info|xread|scan|ping|config|client|hello|dbsize|strlen|select|auth)/)
				next
			if (f == 1) b[cmd] = $3
			else if ($3 > b[cmd]) d[cmd] = $3 - b[cmd]
		}
		END { for (c in d) printf "%s %d\n", c, d[c] }' "$1" "$2" | sort
}

# wrk_figures FILE: "requests req/s p50_us p90_us p99_us" out of wrk --latency's
# output (latencies printed as e.g. "667.00us", "1.23ms", "1.02s", "1.00m").
wrk_figures() {
	awk '
		function us(s, v) {
			v = s + 0
			if (s ~ /us$/) return v
			if (s ~ /ms$/) return v * 1000
			if (s ~ /m$/) return v * 60000000
			return v * 1000000
		}
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { r = $2 }
		$1 == "50%" { p50 = us($2) }
		$1 == "90%" { p90 = us($2) }
		$1 == "99%" { p99 = us($2) }
		END { print n + 0, r + 0, p50 + 0, p90 + 0, p99 + 0 }' "$1"
}

# expect_tier NAME URL TIER: URL must now be a hit from TIER.
expect_tier() {
	local status
	status=$(cache_status "$2") || die "$1: GET $2 failed"
	[[ $status == "strata; hit;"*"; detail=$3" ]] ||
		die "$1: $2 answers \"$status\", not a hit with detail=$3"
}

# median_col FILE COLUMN and range_col FILE COLUMN over a results file.
median_col() { cut -d' ' -f"$2" "$1" | median; }
range_col() {
	cut -d' ' -f"$2" "$1" | sort -g |
		awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }'
}

# --- the report header -----------------------------------------------------
start_redis
start_origin

echo "## Redis tier benchmark"
echo
echo "- machine: $(machine_line)"
echo "- strata: $(version_of "$STRATA_BIN" --version) ($strata_real run directly), --workers $WORKERS, disk tier off, route \`/obj=3600s\`"
echo "- redis: $(version_of redis-server --version | awk '{ print $3 }' | sed 's/^v=//'), own instance on 127.0.0.1 (\`--save '' --appendonly no\`), same machine"
echo "- origin: bare_mhd, $SIZE-byte body, $WORKERS threads"
echo "- load: $(version_of wrk -v | awk '{ print $1, $2 }'), 1 thread, ${DURATION}s per run, $ROUNDS round(s) rotating the order, medians shown; wrk, Redis and Strata share the same $(nproc) CPUs, nothing pinned"

# --- hits: Redis tier against memory tier ------------------------------------
# measure_hit NAME SET: one wrk run; appends
# "req/s p50 p99 strata_cpu_us redis_cpu_us gets_per_req" to
# $tmp/hits/SET/NAME.
measure_hit() {
	local name=$1 set=$2 out="$tmp/wrk.out" url="http://127.0.0.1:${port[$1]}/obj"
	local before after rbefore rafter calls0 calls1 requests rps p50 p99 errors status
	local args=("$url")
	[ "$set" = one ] ||
		args=(-s "$tmp/random.lua" "http://127.0.0.1:${port[$name]}/" -- "$KEYS" "$RANDOM")
	read -r calls0 _ < <(redis_calls)
	before=$(tree_ticks "${pid[$name]}")
	rbefore=$(tree_ticks "${pid[redis-server]}")
	wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${args[@]}" >"$out" 2>&1 ||
		die "$name: wrk failed: $(cat "$out")"
	after=$(tree_ticks "${pid[$name]}")
	rafter=$(tree_ticks "${pid[redis-server]}")
	read -r calls1 _ < <(redis_calls)
	if ! kill -0 "${pid[$name]}" 2>/dev/null || [ "$after" -lt "$before" ]; then
		show_log "$name"
		die "$name: exited during the run"
	fi
	read -r requests rps p50 _ p99 < <(wrk_figures "$out")
	[ "$requests" -gt 0 ] || die "$name: cannot read wrk's output: $(cat "$out")"
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name ($set): $(tr '\n' ' ' <<<"$errors")"
	# Still served from the same tier after the load?
	if [ "$set" = one ]; then
		url="http://127.0.0.1:${port[$name]}/obj"
	else
		url="http://127.0.0.1:${port[$name]}/obj?k=$((RANDOM % KEYS + 1))"
	fi
	status=$(cache_status "$url") || status="(request failed)"
	[[ $status == *"; detail=${tier_of[$name]}" ]] ||
		warn "$name ($set): after the run $url answers \"$status\""
	awk -v r="$rps" -v p50="$p50" -v p99="$p99" -v n="$requests" -v hz="$clk_tck" \
		-v t=$((after - before)) -v rt=$((rafter - rbefore)) -v g=$((calls1 - calls0)) \
		'BEGIN { printf "%s %.0f %.0f %.2f %.2f %.3f\n", r, p50, p99,
			t * 1000000 / hz / n, rt * 1000000 / hz / n, g / n }' \
		>>"$tmp/hits/$set/$name"
	log "$name ($set): $(tail -n 1 "$tmp/hits/$set/$name") (req/s, p50 µs, p99 µs, Strata CPU µs/req, Redis CPU µs/req, GETs/req)"
}

# warm_keys NAME: request /obj?k=1..KEYS once each, over one keep-alive
# connection.
warm_keys() {
	awk -v n="$KEYS" -v port="${port[$1]}" 'BEGIN {
		for (i = 1; i <= n; i++) {
			printf "url = \"http://127.0.0.1:%s/obj?k=%d\"\n", port, i
			print "output = \"/dev/null\""
		}
	}' >"$tmp/warm-$1.curl"
	curl -sf -K "$tmp/warm-$1.curl" || die "$1: warming $KEYS keys failed"
}

# wait_entries N: until Redis holds at least N entries (its writes are
# asynchronous).
wait_entries() {
	local i have=0
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		have=$(redis_entries)
		[ "$have" -lt "$1" ] || return 0
		sleep 0.1
	done
	die "Redis holds $have entries after ${READY_TIMEOUT}s, $1 expected"
}

declare -A tier_of
run_hits() {
	local name set n round i names=(memory) sample label base best best_rps r f
	tier_of[memory]=memory
	start_strata memory
	for n in $POOLS; do
		names+=("redis-p$n")
		tier_of[redis-p$n]=redis
		start_strata "redis-p$n" --set cache.memory=0 \
			--set "cache.redis.url=$(redis_url)" --set "cache.redis.pool=$n"
	done

	# One key: the first Redis instance fills Redis, the others find it.
	for name in "${names[@]}"; do
		cache_status "http://127.0.0.1:${port[$name]}/obj" >/dev/null ||
			die "$name: GET /obj failed"
		[ "$name" = memory ] || wait_entries 1
		expect_tier "$name" "http://127.0.0.1:${port[$name]}/obj" "${tier_of[$name]}"
		log "$name: /obj is a ${tier_of[$name]} hit"
	done
	# KEYS keys.
	log "warming $KEYS keys"
	warm_keys memory
	warm_keys "${names[1]}"
	wait_entries $((KEYS + 1))
	for name in "${names[@]}"; do
		for sample in 1 "$KEYS" $((RANDOM % KEYS + 1)); do
			expect_tier "$name" "http://127.0.0.1:${port[$name]}/obj?k=$sample" "${tier_of[$name]}"
		done
	done
	log "$KEYS keys warmed: $(redis_entries) entries in Redis"

	for set in one many; do
		mkdir -p "$tmp/hits/$set"
		for ((round = 0; round < ROUNDS; round++)); do
			log "hits, $set key(s), round $((round + 1))/$ROUNDS"
			n=${#names[@]}
			for ((i = 0; i < n; i++)); do
				measure_hit "${names[(i + round) % n]}" "$set"
			done
		done
	done
	for name in "${names[@]}"; do
		stop_trees "${pid[$name]}"
		forget "${pid[$name]}"
	done

	echo
	echo "### Hits: Redis tier against memory tier"
	echo
	echo "**memory**: the memory tier only, no Redis (\`detail=memory\`).  **redis-pN**: \`--set cache.memory=0 --set cache.disk=off --set cache.redis.url=redis://127.0.0.1:PORT --set cache.redis.pool=N\`: the memory tier stores nothing, so every hit is answered out of Redis (\`detail=redis\`).  \`wrk -t1 -c$CONNS -d${DURATION}s --latency\`: **one key** requests \`/obj\`; **$KEYS keys** requests \`/obj?k=<random 1..$KEYS>\` (a Lua script; every key warmed).  CPU per request is user+system time over the run divided by the requests served; \"GETs/req\" is Redis's own count of GETs over the run (INFO commandstats) divided by the requests served: below 1 when concurrent requests of one key share one GET (they join the leader's flight and answer \`fwd=miss; collapsed\`)."
	echo
	echo "| keys | instance | req/s | req/s min–max | p50 (µs) | p99 (µs) | Strata CPU µs/req | Redis CPU µs/req | Redis GETs/req | req/s vs memory |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	for set in one many; do
		label=$KEYS
		[ "$set" = many ] || label=1
		base=$(median_col "$tmp/hits/$set/memory" 1)
		for name in "${names[@]}"; do
			f="$tmp/hits/$set/$name"
			awk -v k="$label" -v l="$name" -v r="$(median_col "$f" 1)" -v s="$(range_col "$f" 1)" \
				-v p50="$(median_col "$f" 2)" -v p99="$(median_col "$f" 3)" \
				-v c="$(median_col "$f" 4)" -v rc="$(median_col "$f" 5)" \
				-v g="$(median_col "$f" 6)" -v b="$base" \
				'BEGIN { printf "| %s | %s | %.0f | %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f× |\n",
					k, l, r, s, p50, p99, c, rc, g, r / b }'
		done
	done
	for set in one many; do
		echo
		best=''
		best_rps=0
		label="$KEYS keys"
		[ "$set" = many ] || label="one key"
		for name in "${names[@]:1}"; do
			r=$(median_col "$tmp/hits/$set/$name" 1)
			if awk -v a="$r" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then
				best=$name
				best_rps=$r
			fi
		done
		awk -v k="$label" -v n="$best" -v r="$best_rps" \
			-v b="$(median_col "$tmp/hits/$set/memory" 1)" 'BEGIN {
				q = r / b
				printf "%s: best Redis instance %s at %.2f× memory-hit req/s (target ≥ 0.50: %s).\n",
					k, n, q, (q >= 0.50 ? "met" : "**not met**")
			}'
	done
}

# --- the Redis ceiling -------------------------------------------------------
run_ceiling() {
	local round pipeline size entry out rps what
	# A value the size of one stored entry under the key redis-benchmark
	# GETs (without -r it is the literal "key:__rand_int__").
	# Without stored entries (PARTS=ceiling alone): the body size.
	entry=$(rcli --scan --pattern 'strata:e:*' | awk 'NR == 1')
	size=$SIZE
	what="the body size: no Strata entry was stored"
	if [ -n "$entry" ]; then
		size=$(rcli strlen "$entry")
		what="the size of one stored Strata entry"
	fi
	head -c "$size" /dev/zero | tr '\0' x | rcli -x set key:__rand_int__ >/dev/null
	mkdir -p "$tmp/ceiling"
	for ((round = 0; round < ROUNDS; round++)); do
		log "ceiling, round $((round + 1))/$ROUNDS"
		for pipeline in 1 16; do
			out=$(redis-benchmark -h 127.0.0.1 -p "${port[redis-server]}" -t get -n 200000 -c 50 \
				-P "$pipeline" -q 2>&1 | tr '\r' '\n') ||
				die "redis-benchmark failed: $out"
			rps=$(awk '/requests per second/ { r = $2 } END { print r }' <<<"$out")
			[ -n "$rps" ] || die "cannot read redis-benchmark's output: $out"
			echo "$rps" >>"$tmp/ceiling/P$pipeline"
			log "redis-benchmark -P $pipeline: $rps GET/s"
		done
	done
	echo
	echo "### The Redis ceiling on this machine"
	echo
	echo "\`redis-benchmark -p PORT -t get -n 200000 -c 50 -q\` (and with \`-P 16\`) against the same redis-server, the key it reads holding $size bytes ($what).  No HTTP, no Strata: Redis and redis-benchmark share the $(nproc) CPUs."
	echo
	echo "| command | GET/s | min–max |"
	echo "|---|---:|---:|"
	local label
	for pipeline in 1 16; do
		label="\`redis-benchmark -t get -n 200000 -c 50 -q\`"
		[ "$pipeline" = 1 ] || label="\`redis-benchmark -t get -n 200000 -c 50 -P 16 -q\`"
		awk -v l="$label" -v r="$(median <"$tmp/ceiling/P$pipeline")" \
			-v s="$(sort -g "$tmp/ceiling/P$pipeline" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')" \
			'BEGIN { printf "| %s | %.0f | %s |\n", l, r, s }'
	done
	echo
	echo "Every Strata Redis hit is one such GET (with a reply of that size) plus the HTTP work of a hit, on the same $(nproc) CPUs as Redis and wrk."
}

# --- misses: the latency Redis adds -------------------------------------------
# measure_miss NAME RUN: appends "req/s p50 p90 p99 commands_per_miss" to
# $tmp/miss/NAME; the run's Redis command mix goes to $tmp/miss/NAME.mix.
measure_miss() {
	local name=$1 run=$2 out="$tmp/wrk.out" requests rps p50 p90 p99 errors
	local url="http://127.0.0.1:${port[$name]}/" probe status calls0 calls1
	rcli info commandstats | tr -d '\r' >"$tmp/stats0"
	read -r _ calls0 < <(redis_calls)
	wrk -t1 -c"$MISS_CONNS" -d"${DURATION}s" --latency -s "$tmp/miss.lua" "$url" \
		-- "$run" >"$out" 2>&1 || die "$name: wrk failed: $(cat "$out")"
	read -r _ calls1 < <(redis_calls)
	rcli info commandstats | tr -d '\r' >"$tmp/stats1"
	kill -0 "${pid[$name]}" 2>/dev/null || {
		show_log "$name"
		die "$name: exited during the run"
	}
	read -r requests rps p50 p90 p99 < <(wrk_figures "$out")
	[ "$requests" -gt 0 ] || die "$name: cannot read wrk's output: $(cat "$out")"
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name: $(tr '\n' ' ' <<<"$errors")"
	# A key of this run, requested again, is now a hit: the run did store
	# them.  (Not the first key: wrk may generate a request it never sends.)
	probe="http://127.0.0.1:${port[$name]}/obj?m=$run-$(((requests + 3) / 2))"
	status=$(cache_status "$probe") || status="(request failed)"
	[[ $status == "strata; hit;"* ]] ||
		warn "$name: after the run $probe answers \"$status\", not a hit"
	if [ "$name" = with-redis ]; then
		redis_mix "$tmp/stats0" "$tmp/stats1" >"$tmp/miss/$name.mix"
	fi
	awk -v r="$rps" -v p50="$p50" -v p90="$p90" -v p99="$p99" -v n="$requests" \
		-v c=$((calls1 - calls0)) -v redis="$([ "$name" = with-redis ] && echo 1 || echo 0)" \
		'BEGIN { printf "%s %.0f %.0f %.0f %.2f\n", r, p50, p90, p99, (redis ? c / n : 0) }' \
		>>"$tmp/miss/$name"
	log "$name: $(tail -n 1 "$tmp/miss/$name") (misses/s, p50 µs, p90 µs, p99 µs, Redis commands/miss)"
}

run_miss() {
	local round status mix name f
	mkdir -p "$tmp/miss"
	start_strata no-redis
	start_strata with-redis --set "cache.redis.url=$(redis_url)"
	for name in no-redis with-redis; do
		status=$(cache_status "http://127.0.0.1:${port[$name]}/obj?m=probe") ||
			die "$name: GET /obj?m=probe failed"
		[ "$status" = "strata; fwd=miss; stored" ] ||
			die "$name: a new key answers \"$status\", not \"strata; fwd=miss; stored\""
	done
	for ((round = 0; round < ROUNDS; round++)); do
		log "misses, round $((round + 1))/$ROUNDS"
		if ((round % 2 == 0)); then
			measure_miss no-redis "r$round"
			measure_miss with-redis "r$round"
		else
			measure_miss with-redis "r$round"
			measure_miss no-redis "r$round"
		fi
	done
	stop_trees "${pid[no-redis]}" "${pid[with-redis]}"
	forget "${pid[no-redis]}" "${pid[with-redis]}"

	mix=$(awk '{ printf "%s%s %s", sep, toupper($1), $2; sep = ", " }' "$tmp/miss/with-redis.mix")
	echo
	echo "### Misses: the latency Redis adds"
	echo
	echo "Both instances: memory tier on (default budget), disk tier off, route \`/obj=3600s\`; **no Redis** has no \`cache.redis.url\`, **Redis** has it (default pool).  \`wrk -t1 -c$MISS_CONNS -d${DURATION}s --latency\` with a Lua script requesting \`/obj?m=<run>-<counter>\`: every request is a new key, fetched from the origin (bare_mhd, $SIZE bytes) and stored.  Latency is wrk's, per request; \"Redis commands per miss\" is Redis's count over the run divided by the misses."
	echo
	echo "| instance | misses/s | p50 (µs) | p90 (µs) | p99 (µs) | p99 min–max (µs) | Redis commands per miss |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for name in no-redis with-redis; do
		f="$tmp/miss/$name"
		awk -v l="$([ "$name" = with-redis ] && echo 'Redis' || echo 'no Redis')" \
			-v r="$(median_col "$f" 1)" -v p50="$(median_col "$f" 2)" \
			-v p90="$(median_col "$f" 3)" -v p99="$(median_col "$f" 4)" \
			-v s="$(range_col "$f" 4)" -v c="$(median_col "$f" 5)" \
			'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.0f | %s | %.2f |\n", l, r, p50, p90, p99, s, c }'
	done
	awk -v ra="$(median_col "$tmp/miss/no-redis" 1)" -v rb="$(median_col "$tmp/miss/with-redis" 1)" \
		-v a50="$(median_col "$tmp/miss/no-redis" 2)" -v b50="$(median_col "$tmp/miss/with-redis" 2)" \
		-v a90="$(median_col "$tmp/miss/no-redis" 3)" -v b90="$(median_col "$tmp/miss/with-redis" 3)" \
		-v a99="$(median_col "$tmp/miss/no-redis" 4)" -v b99="$(median_col "$tmp/miss/with-redis" 4)" \
		'BEGIN { printf "| difference | %+.0f | %+.0f | %+.0f | %+.0f | | |\n", rb - ra, b50 - a50, b90 - a90, b99 - a99 }'
	echo
	echo "Redis commands over the last Redis run: ${mix:-none} (Redis's INFO commandstats, which also counts the commands a script runs: the fleet lock's release is an EVAL that runs a GET and a DEL)."
}

if wants hits; then
	run_hits
fi
if wants ceiling; then
	run_ceiling
fi
if wants miss; then
	run_miss
fi
