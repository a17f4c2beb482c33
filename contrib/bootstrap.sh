#!/usr/bin/env bash
# contrib/bootstrap.sh: from a fresh Debian 12 machine to a built, tested or
# running Strata, in one command.
#
#   contrib/bootstrap.sh [build|demo|test] [CONFIGURE-ARG...]
#
#   build  (the default) install the Debian packages that are missing, run
#          autoreconf and ./configure when needed, then make -j$(nproc)
#   demo   build, start the demo app (contrib/demo/slow_app.py) on
#          127.0.0.1:8000 in the background and run
#          ./strata -c contrib/demo/strata.yaml in the foreground; Ctrl-C
#          (or TERM) stops both
#   test   build, then make -j2 check; on failure prints the failing tests'
#          logs; exits with make's status
#
# Every step is skipped when it has nothing to do, so running it again is
# cheap: packages are checked with dpkg-query and apt-get (update included)
# runs only when one is missing; autoreconf runs only when configure is
# missing or older than configure.ac; configure runs only when it has not
# run, is stale, or its arguments changed.
#
# Run it as root (a fresh machine), through sudo, or as a normal user once
# the packages are there.  Under sudo the packages are installed as root and
# the build then runs as the invoking user, so the tree stays theirs.
#
# Environment:
#   STRATA_WERROR=1       configure with --enable-werror (CI does)
#   STRATA_BUILD_DIR=DIR  build out of tree in DIR (relative to the source
#                         root, or absolute); default: in the source tree
#   CC CFLAGS CPPFLAGS LDFLAGS   seen by configure as usual; a change
#                         reconfigures
#   DEMO_DELAY=SECONDS    how long the demo app's /slow takes (default 2)
#
# Extra arguments go to configure unchanged, e.g.
#   contrib/bootstrap.sh test CFLAGS="-O0 -g"
set -euo pipefail

readonly PACKAGES=(
	build-essential autoconf automake libtool pkg-config
	libmicrohttpd-dev libhiredis-dev libxxhash-dev liblmdb-dev
	libcriterion-dev libcurl4-openssl-dev libfyaml-dev libjansson-dev
	liburcu-dev libsystemd-dev redis-server nginx python3 curl
)
readonly DEMO_APP_ADDR=127.0.0.1:8000
readonly DEMO_STRATA_ADDR=127.0.0.1:8080

export DEBIAN_FRONTEND=noninteractive

say() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

usage() {
	sed -n -e '5,15s/^# \{0,1\}//p' \
		-e '/^# Environment:/,/^#   contrib.*CFLAGS/s/^# \{0,1\}//p' "$0"
}

# --- packages -----------------------------------------------------------

missing_packages() {
	local pkg status
	for pkg in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
		[ "$status" = installed ] || printf '%s\n' "$pkg"
	done
}

install_packages() {
	local missing=()
	mapfile -t missing < <(missing_packages)
	if [ "${#missing[@]}" -eq 0 ]; then
		return 0
	fi
	say "installing missing packages: ${missing[*]}"
	local as_root=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null ||
			die "packages missing (${missing[*]}) and not root: run this as root"
		as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
	fi
	"${as_root[@]}" apt-get update
	"${as_root[@]}" apt-get install -y "${missing[@]}"
}

# Under sudo, build as the user who asked, not as root, when the checkout is
# theirs: a root-owned build tree would break their next plain `make`.
drop_privileges_if_sudo() {
	[ "$(id -u)" -eq 0 ] || return 0
	[ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ] || return 0
	[ "$(stat -c %U "$SRCDIR")" = "$SUDO_USER" ] || return 0
	say "packages done; continuing as $SUDO_USER"
	if command -v runuser >/dev/null; then
		exec runuser -u "$SUDO_USER" -- "$SRCDIR/contrib/bootstrap.sh" "$@"
	fi
	exec sudo -E -u "$SUDO_USER" -- "$SRCDIR/contrib/bootstrap.sh" "$@"
}

# --- build --------------------------------------------------------------

configure_args=()

build() {
	cd "$SRCDIR"
	if [ ! -x configure ] || [ ! -f Makefile.in ] ||
		[ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
		say "autoreconf -fi"
		autoreconf -fi
	fi

	if [ "$BUILDDIR" != "$SRCDIR" ] && [ -f "$SRCDIR/config.status" ]; then
		die "the source tree is configured in place, so automake refuses an out-of-tree build in $BUILDDIR (run 'make distclean' in $SRCDIR first)"
	fi
	mkdir -p "$BUILDDIR"
	cd "$BUILDDIR"

	# What configure saw last time: its arguments and the compiler variables.
	local stamp=.bootstrap-configure want
	want=$(printf '%q ' "${configure_args[@]}" \
		"CC=${CC:-}" "CFLAGS=${CFLAGS:-}" "CPPFLAGS=${CPPFLAGS:-}" "LDFLAGS=${LDFLAGS:-}")
	if [ ! -f config.status ] || [ ! -f Makefile ] ||
		[ "$SRCDIR/configure" -nt config.status ] ||
		[ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
		say "configure ${configure_args[*]}"
		rm -f "$stamp"
		"$SRCDIR/configure" "${configure_args[@]}"
		printf '%s' "$want" >"$stamp"
	fi

	say "make -j$(nproc)"
	make -j"$(nproc)"
}

# --- test ---------------------------------------------------------------

run_tests() {
	cd "$BUILDDIR"
	local status=0
	say "make -j2 check"
	make -j2 check || status=$?
	if [ "$status" -ne 0 ]; then
		say "make check failed (status $status); logs of the failures follow"
		if [ -f test-suite.log ]; then
			# automake's summary already holds every failing test's log.
			cat test-suite.log
		else
			local trs
			while IFS= read -r -d '' trs; do
				if grep -Eq '^:global-test-result: (FAIL|ERROR|XPASS)' "$trs"; then
					printf '\n==== %s ====\n' "${trs%.trs}.log"
					cat "${trs%.trs}.log" 2>/dev/null || true
				fi
			done < <(find tests -name '*.trs' -print0 2>/dev/null)
		fi
	fi
	return "$status"
}

# --- demo ---------------------------------------------------------------

app_pid=
strata_pid=

stop_demo() {
	if [ -n "$strata_pid" ] && kill -0 "$strata_pid" 2>/dev/null; then
		kill -TERM "$strata_pid" 2>/dev/null || true
		wait "$strata_pid" 2>/dev/null || true
	fi
	if [ -n "$app_pid" ] && kill -0 "$app_pid" 2>/dev/null; then
		kill -TERM "$app_pid" 2>/dev/null || true
		wait "$app_pid" 2>/dev/null || true
		say "demo app (pid $app_pid) stopped"
	fi
	app_pid=
}

# A signal to this script is passed to strata (which drains and exits);
# the EXIT trap then stops the demo app.
forward_signal() {
	if [ -n "$strata_pid" ]; then
		kill -"$1" "$strata_pid" 2>/dev/null || true
	fi
}

wait_for_app() {
	local _
	for _ in $(seq 1 50); do
		if curl -fsS -o /dev/null --max-time 1 "http://$DEMO_APP_ADDR/health" 2>/dev/null; then
			return 0
		fi
		kill -0 "$app_pid" 2>/dev/null ||
			die "the demo app exited at start (is $DEMO_APP_ADDR already in use?)"
		sleep 0.1
	done
	die "the demo app did not answer on $DEMO_APP_ADDR within 5 s"
}

demo() {
	cd "$SRCDIR"
	local strata="$BUILDDIR/strata"
	[ -x "$strata" ] || die "$strata was not built"

	trap stop_demo EXIT
	# Job control puts each background process in its own process group, so
	# a terminal's Ctrl-C reaches only this script, which forwards it to
	# strata; monitor mode is turned off again to keep bash from printing
	# job notices.
	set -m
	python3 contrib/demo/slow_app.py --host "${DEMO_APP_ADDR%:*}" --port "${DEMO_APP_ADDR##*:}" &
	app_pid=$!
	set +m
	wait_for_app

	cat <<EOF

  Strata demo
    demo app  http://$DEMO_APP_ADDR   (contrib/demo/slow_app.py; /slow takes ~${DEMO_DELAY:-2} s)
    strata    http://$DEMO_STRATA_ADDR   (contrib/demo/strata.yaml; /slow has ttl 60s)

  In another terminal, run this twice:

    curl -i http://$DEMO_STRATA_ADDR/slow

  The first call takes ~${DEMO_DELAY:-2} s: the app computes the answer and Strata
  stores it ("Cache-Status: strata; fwd=miss; stored").  The second is a
  memory hit: it returns at once with the same computed_at, an Age header
  and "Cache-Status: strata; hit; ttl=...; detail=memory", until the 60 s
  ttl runs out.  Also try /health (ttl 0: "strata; fwd=bypass", always the
  app) and, per language (each one's second call within 10 s is a hit):
    curl -i -H 'Accept-Language: fr' http://$DEMO_STRATA_ADDR/api/users/7

  Ctrl-C stops strata (it drains in-flight requests) and the demo app.

EOF

	trap 'forward_signal INT' INT
	trap 'forward_signal TERM' TERM
	set -m
	"$strata" -c contrib/demo/strata.yaml &
	strata_pid=$!
	set +m

	# wait returns early (status > 128) when a trapped signal arrives; keep
	# waiting until strata itself has exited, then collect its status.
	while kill -0 "$strata_pid" 2>/dev/null; do
		wait "$strata_pid" || true
	done
	local status=0
	wait "$strata_pid" || status=$?
	strata_pid=
	return "$status"
}

# --- main ---------------------------------------------------------------

SRCDIR=$(cd -P -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
readonly SRCDIR

command=build
if [ $# -gt 0 ]; then
	case "$1" in
	build | demo | test)
		command=$1
		shift
		;;
	-h | --help | help)
		usage
		exit 0
		;;
	-* | *=*) ;; # configure arguments only: build
	*)
		usage >&2
		exit 2
		;;
	esac
fi

install_packages
drop_privileges_if_sudo "$command" "$@"

configure_args=("$@")
if [ "${STRATA_WERROR:-0}" = 1 ]; then
	configure_args+=(--enable-werror)
fi

case "${STRATA_BUILD_DIR:-}" in
"") BUILDDIR=$SRCDIR ;;
/*) BUILDDIR=$STRATA_BUILD_DIR ;;
*) BUILDDIR=$SRCDIR/$STRATA_BUILD_DIR ;;
esac
readonly BUILDDIR

build
case "$command" in
build) ;;
test) run_tests ;;
demo) demo ;;
esac
