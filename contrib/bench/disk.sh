#!/usr/bin/env bash
# The LMDB disk tier: how fast it serves hits next to the memory tier,
# how long Strata takes to start on a million stored entries, and how
# fast its writer thread stores them.
#
#   contrib/bench/disk.sh                     # about 3 minutes
#   ROUNDS=1 DURATION=2 ENTRIES=100000 STARTS=3 contrib/bench/disk.sh
#                                             # a quick check, under a minute
#
# hits: for each body size, a bare_mhd origin and two Strata instances
#   with route /obj=3600s and a disk tier each: "disk" with --memory 0
#   (nothing fits in memory, so every hit is read from LMDB) and "memory"
#   with --memory MEMORY.  Each is warmed until /obj answers a hit, which
#   must say detail=disk and detail=memory respectively; then ROUNDS
#   rounds alternating the order of `wrk -t1 -cCONNS -dDURATIONs` measure
#   req/s, p99 and Strata's CPU per request.  Target: disk ≥ 0.70× memory
#   in req/s.
# startup: disk_fill (disk_fill.c, linked against the built libstrata)
#   stores ENTRIES entries for /k/1 .. /k/ENTRIES into a fresh directory,
#   exactly as Strata would have, and reports the writer's entries/s.
#   Then, STARTS times each and in a rotating order, Strata is started on
#   that directory, on an empty one and on an existing environment with
#   no entries, timed from exec until its port accepts a connection
#   (a tight connect loop in this shell).  Target: under 1 s with a
#   million entries.  Last, one random filled key must be served as a
#   disk hit.
#
# Run from anywhere in a built tree (it changes to the top).  Needs cc,
# pkg-config with libmicrohttpd's, xxHash's and LMDB's headers, curl
# (7.84 or later) and wrk; the fill needs about 2.3 KB per entry in
# TMPDIR (2.2 GB for a million).
#
# Environment:
#   PARTS="hits startup"  what to run
#   ROUNDS=3          hit measurement rounds, each measuring both instances
#   DURATION=5        seconds of wrk per measurement
#   CONNS=50          wrk connections (one thread)
#   SIZES="1024 65536"  body sizes in bytes for the hits
#   MEMORY=256MiB     --memory of the memory-hit instance and the start-ups
#   ENTRIES=1000000   entries stored for the start-up test
#   FILL_SIZE=4GiB    cache.disk.size of the filled directory
#   STARTS=5          timed start-ups per directory
#   STARTUP_TIMEOUT=30  seconds one start-up may take
#   WORKERS=2         Strata --workers and bare_mhd threads
#   BASE_PORT=18100   first port tried; ports in use are skipped
#   STRATA_BIN=./strata
#   READY_TIMEOUT=15  seconds to wait for a server to answer
#
# The Markdown report goes to stdout; progress and warnings to stderr.
# Every process it starts is stopped on exit, by PID, and its temp dir
# (with the filled LMDB directory) is removed.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source-path=SCRIPTDIR source=lib.sh
. contrib/bench/lib.sh

PARTS=${PARTS:-hits startup}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-50}
SIZES=${SIZES:-1024 65536}
MEMORY=${MEMORY:-256MiB}
ENTRIES=${ENTRIES:-1000000}
FILL_SIZE=${FILL_SIZE:-4GiB}
STARTS=${STARTS:-5}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-30}
WORKERS=${WORKERS:-2}
STRATA_BIN=${STRATA_BIN:-./strata}
READY_TIMEOUT=${READY_TIMEOUT:-15}

# A rough upper bound of the filled directory per entry (measured: about
# 2.2 KB for a 1 KiB body, the B-tree pages being two-thirds full).
FILL_BYTES_PER_ENTRY=2400

need cc pkg-config curl wrk
for lib in libmicrohttpd libxxhash lmdb; do
	pkg-config --exists "$lib" ||
		die "$lib not found by pkg-config (apt-get install -y libmicrohttpd-dev libxxhash-dev liblmdb-dev)"
done
[ -x "$STRATA_BIN" ] ||
	die "$STRATA_BIN not found: build first (./configure && make) or set STRATA_BIN"
[ -e .libs/libstrata.so ] ||
	die ".libs/libstrata.so not found: build first (./configure && make)"
for part in $PARTS; do
	case $part in
	hits | startup) ;;
	*) die "PARTS: unknown part \"$part\" (use hits, startup or both)" ;;
	esac
done
wants() { [[ " $PARTS " == *" $1 "* ]]; }

make_tmp
mkdir "$tmp/dirs" # the disk tiers' directories
clk_tck=$(getconf CLK_TCK)

# In a built tree ./strata is libtool's wrapper script, which runs a shell
# and then execs .libs/strata: about 10 ms that are libtool's, not
# Strata's, and that would swamp a start-up measured in milliseconds.  Run
# the real binary with the library path the wrapper would have set.
strata_real=$STRATA_BIN
strata_libs=
if grep -qs 'temporary wrapper script for' "$STRATA_BIN"; then
	strata_real="$(dirname "$STRATA_BIN")/.libs/$(basename "$STRATA_BIN")"
	strata_libs="$PWD/.libs"
	[ -x "$strata_real" ] || die "$STRATA_BIN is a libtool wrapper but $strata_real is missing"
fi

# strata_exec ARG...: exec Strata (call it in the background: `... &`,
# so that $! is Strata's own PID).
strata_exec() {
	[ -z "$strata_libs" ] ||
		export LD_LIBRARY_PATH="$strata_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	exec "$strata_real" "$@"
}

read -r -a mhd_flags <<<"$(pkg-config --cflags --libs libmicrohttpd)"
cc -O2 -Wall -o "$tmp/bare_mhd" contrib/bench/bare_mhd.c "${mhd_flags[@]}" ||
	die "cannot build contrib/bench/bare_mhd.c"
if wants startup; then
	read -r -a fill_flags <<<"$(pkg-config --cflags --libs libxxhash lmdb)"
	cc -O2 -std=gnu11 -D_GNU_SOURCE -Wall -I. -Iinclude -Isrc \
		-o "$tmp/disk_fill" contrib/bench/disk_fill.c .libs/libstrata.so \
		-Wl,-rpath,"$PWD/.libs" "${fill_flags[@]}" ||
		die "cannot build contrib/bench/disk_fill.c"
	avail=$(df -P -B1 "$tmp" | awk 'NR == 2 { print $4 }')
	needed=$((ENTRIES * FILL_BYTES_PER_ENTRY + 512 * 1024 * 1024))
	[ "$avail" -ge "$needed" ] ||
		die "$((avail >> 20)) MiB free in $(dirname "$tmp"), about $((needed >> 20)) MiB needed for $ENTRIES entries: set TMPDIR or lower ENTRIES"
fi

# --- servers ---------------------------------------------------------------
# pid[NAME], port[NAME]; started_at[NAME] is $EPOCHREALTIME just before
# the fork.
declare -A pid port started_at

start_origin() {
	alloc_port 'port[origin]'
	"$tmp/bare_mhd" "${port[origin]}" "$1" "$WORKERS" >"$tmp/origin.log" 2>&1 &
	pid[origin]=$!
	started+=("${pid[origin]}")
	wait_ready origin "${pid[origin]}" "http://127.0.0.1:${port[origin]}/"
}

# start_strata NAME ROUTE MEMORY DIR [ARG...]: Strata in front of the
# origin with its disk tier in DIR.
start_strata() {
	local name=$1 route=$2 memory=$3 dir=$4 admin
	shift 4
	alloc_port "port[$name]"
	alloc_port admin
	started_at[$name]=$EPOCHREALTIME
	strata_exec --upstream "http://127.0.0.1:${port[origin]}" \
		--listen "127.0.0.1:${port[$name]}" \
		--admin-listen "127.0.0.1:$admin" --workers "$WORKERS" \
		--route "$route" --memory "$memory" --set access_log=false \
		--set "cache.disk.path=$dir" "$@" >"$tmp/$name.log" 2>&1 &
	pid[$name]=$!
	started+=("${pid[$name]}")
}

# stop NAME...: stop servers and forget them.
stop() {
	local name pids=()
	for name in "$@"; do
		pids+=("${pid[$name]}")
	done
	stop_trees "${pids[@]}"
	forget "${pids[@]}"
}

# cache_status URL: the Cache-Status of one GET (empty when there is none).
cache_status() {
	curl -sf -o /dev/null --max-time 5 -w '%header{cache-status}' "$1"
}

# --- the report header ------------------------------------------------------
echo "## Disk tier benchmark"
echo
echo "- machine: $(machine_line)"
echo "- strata: $(version_of "$STRATA_BIN" --version) ($strata_real run directly), --workers $WORKERS, disk tier sync=meta (the default) unless stated"
echo "- load: $(version_of wrk -v | awk '{ print $1, $2 }'), 1 thread, $CONNS connections, ${DURATION}s per run, $ROUNDS round(s) alternating the order, medians shown; wrk shares the same $(nproc) CPUs"

# --- hits: disk tier against memory tier -------------------------------------
declare -A detail_of
detail_of[disk]=disk
detail_of[memory]=memory

# warm NAME: request /obj until it is a hit (the disk writer commits the
# first answer asynchronously), which must come from the expected tier.
warm() {
	local name=$1 url="http://127.0.0.1:${port[$1]}/obj" status='' i
	for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
		status=$(cache_status "$url") || die "$name: GET $url failed"
		[[ $status != "strata; hit;"* ]] || break
		sleep 0.1
	done
	[[ $status == "strata; hit;"*"; detail=${detail_of[$name]}" ]] ||
		die "$name: /obj answers \"$status\", not a hit with detail=${detail_of[$name]}"
	log "$name: warm-up answer: $status"
}

# measure NAME SIZE: one wrk run; appends "req/s p99_us cpu_us_per_req" to
# $tmp/results/SIZE/NAME.
measure() {
	local name=$1 size=$2 out="$tmp/wrk.out" url="http://127.0.0.1:${port[$1]}/obj"
	local before after requests run_rps run_p99 errors status
	before=$(tree_ticks "${pid[$name]}")
	wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$url" >"$out" 2>&1 ||
		die "$name: wrk failed: $(cat "$out")"
	after=$(tree_ticks "${pid[$name]}")
	if ! kill -0 "${pid[$name]}" 2>/dev/null || [ "$after" -lt "$before" ]; then
		show_log "$name"
		die "$name ($size B): exited during the run"
	fi
	# wrk prints latencies as e.g. "667.00us", "1.23ms", "1.02s", "1.00m".
	read -r requests run_rps run_p99 < <(awk '
		/ requests in / { n = $1 }
		/^Requests\/sec:/ { r = $2 }
		$1 == "99%" {
			v = $2 + 0
			if ($2 ~ /us$/) p = v
			else if ($2 ~ /ms$/) p = v * 1000
			else if ($2 ~ /m$/) p = v * 60000000
			else p = v * 1000000
		}
		END { print n + 0, r + 0, p + 0 }' "$out")
	[ "$requests" -gt 0 ] || die "$name: cannot read wrk's output: $(cat "$out")"
	errors=$(grep -E 'Socket errors|Non-2xx' "$out" || true)
	[ -z "$errors" ] || warn "$name ($size B): $(tr '\n' ' ' <<<"$errors")"
	# Still served from the same tier after the load?
	status=$(cache_status "$url") || status="(request failed)"
	[[ $status == *"; detail=${detail_of[$name]}" ]] ||
		warn "$name ($size B): after the run /obj answers \"$status\""
	awk -v r="$run_rps" -v p="$run_p99" -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" \
		'BEGIN { printf "%s %.0f %.2f\n", r, p, t * 1000000 / hz / n }' \
		>>"$tmp/results/$size/$name"
	log "$name ($size B): $(tail -n 1 "$tmp/results/$size/$name") (req/s, p99 µs, CPU µs/req)"
}

# hits_table: the report for every size measured.
hits_table() {
	local size name runs
	echo
	echo "### Hits: disk tier against memory tier"
	echo
	echo "Route \`/obj=3600s\`, a bare_mhd origin; **disk**: \`--memory 0\`, every hit read from LMDB (\`detail=disk\`); **memory**: \`--memory $MEMORY\` (\`detail=memory\`).  Both have a disk tier in their own directory."
	echo
	echo "| body | tier | req/s | req/s min–max | p99 (µs) | CPU µs/request |"
	echo "|---:|---|---:|---:|---:|---:|"
	for size in $SIZES; do
		for name in memory disk; do
			runs="$tmp/results/$size/$name"
			awk -v b="$size" -v t="$name" \
				-v r="$(cut -d' ' -f1 "$runs" | median)" \
				-v s="$(cut -d' ' -f1 "$runs" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f–%.0f", lo, hi }')" \
				-v p="$(cut -d' ' -f2 "$runs" | median)" \
				-v c="$(cut -d' ' -f3 "$runs" | median)" \
				'BEGIN { printf "| %d B | %s | %.0f | %s | %.0f | %.2f |\n", b, t, r, s, p, c }'
		done
	done
	echo
	echo "| body | disk/memory req/s (target ≥ 0.70) | disk/memory p99 | disk/memory CPU per request |"
	echo "|---:|---:|---:|---:|"
	for size in $SIZES; do
		runs="$tmp/results/$size"
		awk -v b="$size" \
			-v dr="$(cut -d' ' -f1 "$runs/disk" | median)" -v mr="$(cut -d' ' -f1 "$runs/memory" | median)" \
			-v dp="$(cut -d' ' -f2 "$runs/disk" | median)" -v mp="$(cut -d' ' -f2 "$runs/memory" | median)" \
			-v dc="$(cut -d' ' -f3 "$runs/disk" | median)" -v mc="$(cut -d' ' -f3 "$runs/memory" | median)" \
			'BEGIN {
				ratio = dr / mr
				printf "| %d B | %.2f× %s | %.2f× | %.2f× |\n", b, ratio,
					(ratio >= 0.70 ? "(met)" : "(**not met**)"),
					(mp > 0 ? dp / mp : 0), (mc > 0 ? dc / mc : 0)
			}'
	done
}

run_hits() {
	local size round name
	for size in $SIZES; do
		log "--- hits, $size-byte body ---"
		mkdir -p "$tmp/results/$size"
		start_origin "$size"
		# Nothing fits in a budget of 0, so the memory tier stores nothing
		# and every hit falls through to the disk tier.
		start_strata disk '/obj=3600s' 0 "$tmp/dirs/disk-$size"
		start_strata memory '/obj=3600s' "$MEMORY" "$tmp/dirs/memory-$size"
		for name in disk memory; do
			# Outside the route: proxied, never stored.
			wait_ready "$name" "${pid[$name]}" "http://127.0.0.1:${port[$name]}/ready"
			warm "$name"
		done
		for ((round = 0; round < ROUNDS; round++)); do
			log "round $((round + 1))/$ROUNDS"
			if ((round % 2 == 0)); then
				measure disk "$size"
				measure memory "$size"
			else
				measure memory "$size"
				measure disk "$size"
			fi
		done
		stop disk memory origin
	done
	hits_table
}

# --- start-up with many entries, and the writer's throughput -----------------
# fill_value NAME: one of disk_fill's figures.
fill_value() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/fill.out"; }

# fill: store ENTRIES entries in $tmp/dirs/filled; disk_fill's figures go
# to $tmp/fill.out ("name value" lines).
fill() {
	log "disk_fill: storing $ENTRIES entries in $tmp/dirs/filled"
	"$tmp/disk_fill" "$tmp/dirs/filled" "$ENTRIES" "$FILL_SIZE" >"$tmp/fill.out" ||
		die "disk_fill failed"
	log "filled in $(fill_value seconds)s: $(fill_value entries_per_s) entries/s"
	# The fill syncs nothing: write its pages back now, so that the kernel
	# is not flushing two gigabytes during the timed start-ups.
	sync "$tmp/dirs/filled"/*.mdb
}

# time_start CASE DIR RUN: start Strata on DIR and append the milliseconds
# from exec until its port accepts a connection to $tmp/start/CASE.
time_start() {
	local case=$1 dir=$2 name="start-$1-$3" p t0 t1 deadline
	start_strata "$name" '/k/*=3600s' "$MEMORY" "$dir" --set "cache.disk.size=$FILL_SIZE"
	p=${pid[$name]}
	t0=${started_at[$name]//[.,]/}
	deadline=$((t0 + STARTUP_TIMEOUT * 1000000))
	# No sleep: each refused connect costs microseconds, and a poll
	# interval would be the resolution of the measurement.  The loop does
	# take one of the two CPUs while Strata starts.
	until { : >"/dev/tcp/127.0.0.1/${port[$name]}"; } 2>/dev/null; do
		if ! kill -0 "$p" 2>/dev/null; then
			show_log "$name"
			die "$name: exited before accepting connections"
		fi
		if [ "${EPOCHREALTIME//[.,]/}" -gt "$deadline" ]; then
			show_log "$name"
			die "$name: not accepting connections after ${STARTUP_TIMEOUT}s"
		fi
	done
	t1=${EPOCHREALTIME//[.,]/}
	stop "$name"
	awk -v us=$((t1 - t0)) 'BEGIN { printf "%.1f\n", us / 1000 }' >>"$tmp/start/$case"
	log "$case: started in $(tail -n 1 "$tmp/start/$case") ms"
}

run_startup() {
	local run i n key answer status size cases=(filled new existing)
	log "--- start-up with $ENTRIES entries ---"
	mkdir -p "$tmp/start"
	fill
	start_origin 1024

	# An existing environment with no entries: created by one start that
	# is not reported.
	time_start setup "$tmp/dirs/existing" 0
	for ((run = 1; run <= STARTS; run++)); do
		for ((i = 0; i < 3; i++)); do
			case ${cases[(i + run) % 3]} in
			filled) time_start filled "$tmp/dirs/filled" "$run" ;;
			new)
				mkdir "$tmp/dirs/new-$run"
				time_start new "$tmp/dirs/new-$run" "$run"
				;;
			existing) time_start existing "$tmp/dirs/existing" "$run" ;;
			esac
		done
	done

	# One random filled key must now be a disk hit, with the whole body.
	n=$(((RANDOM * 32768 + RANDOM) % ENTRIES + 1))
	key="/k/$n"
	start_strata hitcheck '/k/*=3600s' "$MEMORY" "$tmp/dirs/filled" --set "cache.disk.size=$FILL_SIZE"
	wait_ready hitcheck "${pid[hitcheck]}" "http://127.0.0.1:${port[hitcheck]}/ready"
	answer=$(curl -sf -o /dev/null --max-time 5 -w '%{size_download} %header{cache-status}' \
		"http://127.0.0.1:${port[hitcheck]}$key") || die "hitcheck: GET $key failed"
	size=${answer%% *}
	status=${answer#* }
	stop hitcheck origin
	[[ $status == "strata; hit;"*"; detail=disk" && $size == 1024 ]] ||
		die "GET $key after the start answers \"$status\" with $size bytes, not a disk hit of 1024 bytes"
	log "GET $key: $status, $size bytes"

	echo
	echo "### Start-up"
	echo
	echo "Time from exec of \`strata\` until its listening port accepts a TCP connection, $STARTS runs per directory in a rotating order; \`--memory $MEMORY\`, \`cache.disk.size=$FILL_SIZE\`.  The filled directory was written by \`disk_fill\` (below) and then synced; its pages are in the page cache."
	echo
	echo "| disk directory | median (ms) | min–max (ms) |"
	echo "|---|---:|---:|"
	for case in filled new existing; do
		case $case in
		filled) label="$ENTRIES entries ($(($(fill_value tier_bytes_used) >> 20)) MiB used)" ;;
		new) label="empty directory (environment created at start)" ;;
		existing) label="existing environment, no entries" ;;
		esac
		sort -g "$tmp/start/$case" | awk -v l="$label" -v m="$(median <"$tmp/start/$case")" '
			NR == 1 { lo = $1 } { hi = $1 }
			END { printf "| %s | %.1f | %.1f–%.1f |\n", l, m, lo, hi }'
	done
	echo
	median <"$tmp/start/filled" | awk -v n="$ENTRIES" '{
		printf "Target < 1 s with %d entries: %s.\n", n, ($1 < 1000 ? "met" : "**not met**")
	}'
	echo
	echo "After the start, \`GET $key\` (a random filled key) answered \`Cache-Status: $status\` with $size body bytes."

	echo
	echo "### Writer throughput"
	echo
	echo "\`disk_fill\`: $ENTRIES entries (1 KiB body) queued with \`strata_disk_store\` into a new directory, \`sync=none\`, map $FILL_SIZE, timed until \`strata_disk_flush\` returns; the writer thread commits up to 1,024 operations per transaction.  A queue-full wait is one refused store (the queue holds 65,536) followed by 100 µs of sleep: many of them mean the writer set the pace."
	echo
	echo "| entries | store + flush (s) | entries/s | writer thread CPU (s) | producer CPU (s) | queue-full waits | map used (MiB) |"
	echo "|---:|---:|---:|---:|---:|---:|---:|"
	printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$(fill_value entries)" \
		"$(fill_value seconds)" "$(fill_value entries_per_s)" \
		"$(fill_value writer_cpu_s)" "$(fill_value producer_cpu_s)" \
		"$(fill_value queue_full_waits)" "$(($(fill_value tier_bytes_used) >> 20))"
}

if wants hits; then
	run_hits
fi
if wants startup; then
	run_startup
fi
