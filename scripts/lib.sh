# shellcheck shell=bash
# lib.sh: helpers shared by run.sh, test.sh, lint.sh and bench.sh. Source it;
# it defines functions and variables only (no traps, no side effects).
#
# What it owns: installing missing Debian packages (apt-get update at most once
# per run, no service started by the install, one run at a time with a bounded
# wait for another run's install), bounded polling, stopping a
# process, and bringing up the Redis and PostgreSQL the tests run against.

# MG_ROOT is the repository root (the scripts cd there).
# shellcheck disable=SC2034
MG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
# MG_APT_UPDATED is 1 once apt-get update ran in this run (exported so that a
# child script does not run it again).
export MG_APT_UPDATED=${MG_APT_UPDATED:-0}
# MG_INSTALLED lists the packages this process installed.
MG_INSTALLED=()
# MG_STARTED_PG says how ensure_test_postgres started PostgreSQL, if it did:
# "cluster:VERSION/NAME" or "dir:DATADIR". Empty when it was already running.
MG_STARTED_PG=

log() { printf '==> %s\n' "$*" >&2; }
# MG_LOG_FILE, when set (run.sh sets it), is where quietly sends the output
# of the noisy steps (apt-get, go install, go build), so that the terminal
# gets the one line per step that log prints. Unset, they print as usual.
export MG_LOG_FILE=${MG_LOG_FILE:-}
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# quietly CMD...: runs CMD, its output appended to MG_LOG_FILE when that is
# set; when CMD fails, the last lines of the file are shown.
quietly() {
	if [[ -z $MG_LOG_FILE ]]; then
		"$@"
		return
	fi
	local rc=0
	printf '\n$ %s\n' "$*" >>"$MG_LOG_FILE"
	"$@" >>"$MG_LOG_FILE" 2>&1 || rc=$?
	if ((rc != 0)); then
		warn "$* exited with $rc; its last lines (the whole output is in $MG_LOG_FILE):"
		tail -n 30 "$MG_LOG_FILE" >&2
	fi
	return "$rc"
}

# as_root runs a command as root: directly when we are root, else with sudo.
as_root() {
	if [[ $EUID -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo "$@"
	else
		die "need root (or sudo) to run: $*"
	fi
}

# require_go makes sure the go tool is on PATH (a non-login CI shell may miss
# /usr/local/go/bin).
require_go() {
	if ! command -v go >/dev/null 2>&1; then
		local d
		for d in /usr/local/go/bin "$HOME/go/bin" /usr/lib/go/bin; do
			[[ -x $d/go ]] && PATH="$d:$PATH" && break
		done
	fi
	command -v go >/dev/null 2>&1 || die "go is not installed (https://go.dev/dl/); mailgate needs Go 1.26"
	export PATH
}

# use_openssl makes the go builds and tests that follow use the "openssl"
# tag: RSA DKIM signatures through the system's libcrypto, about four times
# faster than Go's (mta/rsa_openssl.go). It installs gcc and libssl-dev when
# missing. MAILGATE_OPENSSL=0 keeps Go's RSA (a pure-Go build).
use_openssl() {
	[[ ${MAILGATE_OPENSSL:-1} == 0 ]] && return 0
	install_missing gcc libc6-dev libssl-dev
	export CGO_ENABLED=1
	# A child script (run.sh calls tools.sh) finds the tag already there.
	[[ " ${GOFLAGS:-} " == *" -tags=openssl "* ]] || export GOFLAGS="${GOFLAGS:+$GOFLAGS }-tags=openssl"
}

# missing_packages prints, one a line, the named Debian packages that are not
# installed.
missing_packages() {
	local p
	for p in "$@"; do
		if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
			printf '%s\n' "$p"
		fi
	done
}

# block_service_starts stops maintainer scripts from starting daemons (a
# Debian policy-rc.d answering 101), so installing postfix, dovecot,
# prometheus or redis starts no server. It prints 1 when it created the file.
block_service_starts() {
	if [[ -e /usr/sbin/policy-rc.d ]]; then
		echo 0
		return
	fi
	printf '#!/bin/sh\n# written by mailgate scripts/lib.sh during apt-get install\nexit 101\n' |
		as_root tee /usr/sbin/policy-rc.d >/dev/null
	as_root chmod 755 /usr/sbin/policy-rc.d
	echo 1
}

# MG_APT_WAIT is how long, in seconds, an install waits for the package
# manager while another run (another mailgate script, or apt elsewhere on the
# machine) holds it, before it gives up.
MG_APT_WAIT=600
# MG_APT_LOCK serialises the installs of mailgate's scripts on this machine
# ("make run" and "make test" side by side), so that one run's apt-get update
# (whose lists lock older apt does not wait for), package install and
# policy-rc.d never overlap another's.
MG_APT_LOCK=/tmp/mailgate-apt.lock
# MG_APT_FD is the descriptor holding MG_APT_LOCK while an install runs.
MG_APT_FD=

# apt_get runs apt-get as root, waiting up to MG_APT_WAIT for the dpkg lock
# that another process holds (apt prints "Waiting for cache lock" meanwhile).
apt_get() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$MG_APT_WAIT" "$@"
}

# apt_update_once runs apt-get update the first time it is called in a run.
apt_update_once() {
	[[ $MG_APT_UPDATED == 1 ]] && return 0
	log "apt-get update…"
	quietly apt_get update -qq || warn "apt-get update failed; trying the package cache"
	MG_APT_UPDATED=1
}

# lock_installs takes MG_APT_LOCK into MG_APT_FD, waiting up to MG_APT_WAIT
# (and saying so) while another run holds it. The file is opened read-only
# and created world-writable, so that runs as root and as a user share it.
lock_installs() {
	[[ -e $MG_APT_LOCK ]] || (umask 0 && : >>"$MG_APT_LOCK") 2>/dev/null
	exec {MG_APT_FD}<"$MG_APT_LOCK" || die "cannot open $MG_APT_LOCK"
	flock -n "$MG_APT_FD" && return 0
	log "waiting up to $((MG_APT_WAIT / 60)) minutes for another run's package install to finish ($MG_APT_LOCK)"
	flock -w "$MG_APT_WAIT" "$MG_APT_FD" ||
		die "another run still holds $MG_APT_LOCK after $((MG_APT_WAIT / 60)) minutes"
}

# unlock_installs releases lock_installs' lock. It unlocks before closing:
# apt-get and what it started inherited the descriptor, and one of them
# keeping it open must not keep the lock.
unlock_installs() {
	flock -u "$MG_APT_FD"
	exec {MG_APT_FD}<&-
	MG_APT_FD=
}

# install_missing installs those of the named Debian packages that are
# missing, without recommends and without starting their services, one run
# at a time (lock_installs): the packages still missing once the lock is
# held are installed. postfix is preseeded to "No configuration" first, so no
# mail server is set up.
install_missing() {
	local -a missing
	mapfile -t missing < <(missing_packages "$@")
	((${#missing[@]})) || return 0
	command -v apt-get >/dev/null 2>&1 || die "missing packages: ${missing[*]} (no apt-get here: install them by hand)"
	lock_installs
	mapfile -t missing < <(missing_packages "$@")
	local rc=0
	((${#missing[@]} == 0)) || install_locked "${missing[@]}" || rc=$?
	unlock_installs
	((rc == 0)) || die "apt-get install ${missing[*]} exited with $rc"
	MG_INSTALLED+=("${missing[@]}")
}

# install_locked installs the named packages; install_missing holds the lock.
install_locked() {
	log "installing $* (apt)…"
	if [[ " $* " == *" postfix "* ]]; then
		echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
	fi
	apt_update_once
	local created rc=0
	created=$(block_service_starts)
	quietly apt_get install -y -qq --no-install-recommends "$@" || rc=$?
	[[ $created == 1 ]] && as_root rm -f /usr/sbin/policy-rc.d
	return "$rc"
}

# install_for_commands CMD:PKG...: installs PKG for each CMD not on PATH (a
# tool installed another way than apt counts).
install_for_commands() {
	local pair
	local -a pkgs=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null 2>&1 || pkgs+=("${pair#*:}")
	done
	((${#pkgs[@]} == 0)) || install_missing "${pkgs[@]}"
}

# wait_until TRIES CMD...: runs CMD every 0.1 s until it succeeds, at most
# TRIES times; fails when it never did.
wait_until() {
	local tries=$1 i
	shift
	for ((i = 0; i < tries; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# stop_process PID: SIGTERM, then up to 10 s for it to exit, then SIGKILL.
stop_process() {
	local pid=$1
	[[ -n $pid ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until 100 process_gone "$pid"; then
		warn "process $pid did not stop within 10 s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

process_gone() { ! kill -0 "$1" 2>/dev/null; }

# redis_up PORT: a Redis answers PING on 127.0.0.1:PORT.
redis_up() {
	[[ $(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null) == PONG ]]
}

# ensure_test_redis starts a throwaway Redis (no persistence) on
# 127.0.0.1:${MAILGATE_TEST_REDIS_PORT:-6379} unless one answers there, and
# exports MAILGATE_TEST_REDIS_URL (DB 15; tests pick their own DBs). A
# MAILGATE_TEST_REDIS_URL set by the caller is used as given.
ensure_test_redis() {
	if [[ -n ${MAILGATE_TEST_REDIS_URL:-} ]]; then
		log "Redis: using MAILGATE_TEST_REDIS_URL as given"
		return 0
	fi
	local port=${MAILGATE_TEST_REDIS_PORT:-6379}
	if redis_up "$port"; then
		log "Redis: already answering on 127.0.0.1:$port"
	else
		log "Redis: starting one on 127.0.0.1:$port"
		redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
			--dir /tmp --pidfile "/tmp/mailgate-test-redis-$port.pid" \
			--logfile "/tmp/mailgate-test-redis-$port.log"
		wait_until 100 redis_up "$port" ||
			die "Redis did not answer on 127.0.0.1:$port (see /tmp/mailgate-test-redis-$port.log)"
	fi
	export MAILGATE_TEST_REDIS_URL="redis://127.0.0.1:$port/15"
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$1"; }

# pg_trusts PORT: the postgres role logs in over TCP without a password.
pg_trusts() {
	psql -w -X -q -h 127.0.0.1 -p "$1" -U postgres -d postgres -c 'select 1' >/dev/null 2>&1
}

# pg_cluster_on PORT prints VERSION/NAME of the Debian cluster set to PORT.
pg_cluster_on() {
	command -v pg_lsclusters >/dev/null 2>&1 || return 0
	pg_lsclusters -h 2>/dev/null | awk -v p="$1" '$3 == p { print $1 "/" $2; exit }'
}

# pg_bindir prints the directory holding initdb and pg_ctl (newest version).
pg_bindir() {
	local initdb
	if initdb=$(command -v initdb 2>/dev/null); then
		dirname "$initdb"
		return
	fi
	compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1 | xargs -r dirname
}

# as_postgres runs a command as the postgres user when we are root (the
# server refuses to run as root), else as ourselves.
as_postgres() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# start_private_postgres PORT: a cluster of our own in /tmp (trust auth,
# 127.0.0.1 only), reused by later runs while /tmp keeps it.
start_private_postgres() {
	local port=$1 bindir dir=/tmp/mailgate-test-pg-$1
	bindir=$(pg_bindir)
	[[ -n $bindir ]] || die "no PostgreSQL server binaries (initdb) found"
	if [[ ! -f $dir/PG_VERSION ]]; then
		log "PostgreSQL: creating a private cluster in $dir"
		rm -rf "$dir"
		mkdir -p "$dir"
		[[ $EUID -eq 0 ]] && chown postgres: "$dir"
		as_postgres "$bindir/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
	fi
	log "PostgreSQL: starting the private cluster on 127.0.0.1:$port"
	as_postgres "$bindir/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
		-o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
	MG_STARTED_PG="dir:$dir"
}

# start_postgres PORT starts the Debian cluster set to PORT, or a private one.
start_postgres() {
	local port=$1 cluster
	cluster=$(pg_cluster_on "$port")
	if [[ -n $cluster ]]; then
		log "PostgreSQL: starting cluster $cluster"
		as_root pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" start
		MG_STARTED_PG="cluster:$cluster"
	else
		start_private_postgres "$port"
	fi
}

# allow_trust PORT lets the postgres role in over 127.0.0.1 without a
# password on the Debian cluster at PORT, but only in CI or when this run
# installed PostgreSQL (a fresh cluster nobody else uses); elsewhere it stops
# with what to do.
allow_trust() {
	local port=$1 cluster
	cluster=$(pg_cluster_on "$port")
	if [[ -z $cluster || (${CI:-} != true && " ${MG_INSTALLED[*]} " != *" postgresql "*) ]]; then
		die "PostgreSQL on 127.0.0.1:$port wants a password for postgres: add 'host all postgres 127.0.0.1/32 trust' to its pg_hba.conf, or set MAILGATE_TEST_POSTGRES_URL"
	fi
	local hba=/etc/postgresql/${cluster%/*}/${cluster#*/}/pg_hba.conf
	log "PostgreSQL: trust auth for 127.0.0.1/32 in $hba"
	as_root sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
	as_root pg_ctlcluster --skip-systemctl-redirect "${cluster%/*}" "${cluster#*/}" reload
	wait_until 100 pg_trusts "$port" || die "PostgreSQL on 127.0.0.1:$port still refuses the postgres role"
}

# ensure_test_postgres makes a PostgreSQL answer on
# 127.0.0.1:${MAILGATE_TEST_POSTGRES_PORT:-5432} with trust auth for the
# postgres role, and exports MAILGATE_TEST_POSTGRES_URL. A
# MAILGATE_TEST_POSTGRES_URL set by the caller is used as given.
ensure_test_postgres() {
	if [[ -n ${MAILGATE_TEST_POSTGRES_URL:-} ]]; then
		log "PostgreSQL: using MAILGATE_TEST_POSTGRES_URL as given"
		return 0
	fi
	local port=${MAILGATE_TEST_POSTGRES_PORT:-5432}
	if pg_ready "$port"; then
		log "PostgreSQL: already answering on 127.0.0.1:$port"
	else
		start_postgres "$port"
		wait_until 600 pg_ready "$port" || die "PostgreSQL did not become ready on 127.0.0.1:$port"
	fi
	pg_trusts "$port" || allow_trust "$port"
	export MAILGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
}

# stop_started_postgres stops PostgreSQL if ensure_test_postgres started it.
stop_started_postgres() {
	case $MG_STARTED_PG in
	cluster:*)
		local c=${MG_STARTED_PG#cluster:}
		as_root pg_ctlcluster --skip-systemctl-redirect "${c%/*}" "${c#*/}" stop || true
		;;
	dir:*)
		as_postgres "$(pg_bindir)/pg_ctl" -D "${MG_STARTED_PG#dir:}" -m fast -w stop >/dev/null || true
		;;
	esac
	MG_STARTED_PG=
}
