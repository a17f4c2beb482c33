# Shared helpers for the benchmark scripts in contrib/bench (sourced, not
# run).  The sourcing script calls make_tmp once, which creates its private
# temp dir $tmp and installs the traps, then appends the PID of every
# process it starts to the array `started`; cleanup() stops each one's
# whole process tree by PID on exit, error or signal, and removes $tmp.
#
# Shared by the benchmark scripts (hits.sh, keys.sh, expiry.sh, disk.sh, redis.sh).
# use; CPU time from /proc/PID/stat over a process tree.
# shellcheck shell=bash

prog=$(basename "$0")
tmp=
started=()

log() { printf '%s\n' "$prog: $*" >&2; }
warn() { printf '%s\n' "$prog: WARNING: $*" >&2; }
die() {
	printf '%s\n' "$prog: $*" >&2
	exit 1
}

# need TOOL...: fail early, naming the Debian package, if a tool is missing.
need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null ||
			die "$tool not found (apt-get install -y ${tool/cc/gcc})"
	done
}

# Print PID and all its descendants, one a line.
tree_pids() {
	ps -e -o pid=,ppid= | awk -v root="$1" '
		{ parent[$1] = $2 }
		END {
			keep[root] = 1
			do {
				grew = 0
				for (p in parent)
					if (!(p in keep) && (parent[p] in keep)) {
						keep[p] = 1
						grew = 1
					}
			} while (grew)
			for (p in keep)
				print p
		}'
}

# start_time PID: field 22 of /proc/PID/stat, which tells a process from a
# later one that reuses its PID.
start_time() {
	local stat f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	read -r -a f <<<"${stat##*) }"
	echo "${f[19]}"
}

# stop_trees PID...: stop the process trees rooted at the given PIDs
# (children of this shell, not yet waited for, so their PIDs cannot have
# been reused): TERM, up to 5 s of grace, then KILL for whatever is left.
# Descendants are listed, with their start times, before the TERM, so that
# workers orphaned by a dead master are still found and a reused PID is
# never signalled.
stop_trees() {
	local tree=() alive=() p t i
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null || continue
		for t in $(tree_pids "$p"); do
			tree+=("$t:$(start_time "$t")")
		done
	done
	kill -TERM "$@" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		alive=()
		for t in "${tree[@]}"; do
			p=${t%%:*}
			[ "$(start_time "$p")" = "${t#*:}" ] && alive+=("$p")
		done
		[ "${#alive[@]}" -gt 0 ] || break
		sleep 0.1
	done
	[ "${#alive[@]}" -eq 0 ] || kill -KILL "${alive[@]}" 2>/dev/null || true
	for p in "$@"; do
		wait "$p" 2>/dev/null || true
	done
}

# forget PID...: drop stopped (and waited-for) PIDs from `started`.
forget() {
	local p q keep=()
	for p in "${started[@]}"; do
		for q in "$@"; do
			[ "$p" != "$q" ] || continue 2
		done
		keep+=("$p")
	done
	started=("${keep[@]}")
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[ "${#started[@]}" -eq 0 ] || stop_trees "${started[@]}"
	[ -z "$tmp" ] || rm -rf "$tmp"
	exit "$rc"
}

# make_tmp: create the private temp dir $tmp and install the traps that
# clean up after the script.  Call once, before starting anything.
make_tmp() {
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/strata-${prog%.sh}.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# alloc_port VAR: the next port from BASE_PORT on that nothing listens on.
next_port=${BASE_PORT:-18100}
alloc_port() {
	while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do
		next_port=$((next_port + 1))
	done
	printf -v "$1" '%s' "$next_port"
	next_port=$((next_port + 1))
}

# tree_ticks PID: utime+stime, in clock ticks, summed over the process tree
# rooted at PID.  Fields 14 and 15 of /proc/PID/stat; the command name
# (field 2) may hold spaces, so the fields are counted after its ')'.
tree_ticks() {
	local p stat total=0 f
	for p in $(tree_pids "$1"); do
		stat=$(cat "/proc/$p/stat" 2>/dev/null) || continue
		read -r -a f <<<"${stat##*) }"
		total=$((total + f[11] + f[12]))
	done
	echo "$total"
}

# tree_rss_kib PID: resident memory in KiB summed over the process tree.
tree_rss_kib() {
	local p total=0 kib
	for p in $(tree_pids "$1"); do
		kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
		total=$((total + ${kib:-0}))
	done
	echo "$total"
}

# show_log NAME: the end of a server's own logs ($tmp/NAME.log and any
# $tmp/NAME*/error.log), to stderr.
show_log() {
	local f
	for f in "$tmp/$1.log" "$tmp/$1"*/error.log; do
		[ -f "$f" ] || continue
		echo "--- ${f#"$tmp"/}:" >&2
		tail -n 20 "$f" >&2
	done
}

# wait_ready NAME PID URL: wait up to READY_TIMEOUT seconds until URL
# answers 200, or fail showing the server's log.
wait_ready() {
	local name=$1 pid=$2 url=$3 i
	for ((i = 0; i < ${READY_TIMEOUT:-15} * 10; i++)); do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log "$name"
			die "$name exited before answering $url"
		fi
		curl -sf -o /dev/null --max-time 1 "$url" && return 0
		sleep 0.1
	done
	show_log "$name"
	die "$name did not answer $url within ${READY_TIMEOUT:-15}s"
}

# Median of the numbers on stdin ("nan" when there are none).
median() {
	sort -g | awk '{ v[NR] = $1 }
		END {
			if (NR == 0) { print "nan"; exit }
			if (NR % 2) print v[(NR + 1) / 2]
			else print (v[NR / 2] + v[NR / 2 + 1]) / 2
		}'
}

# version_of CMD...: the first line CMD prints, or nothing.
version_of() { "$@" 2>&1 | head -n 1 || true; }

# machine_line: "N CPUs, model, Linux release", for report headers.
machine_line() {
	local model
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "$(nproc) CPUs, ${model:-unknown CPU}, Linux $(uname -r)"
}
