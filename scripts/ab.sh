#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# ab.sh BASE_REV [NEW_REV] [REPS] [COUNT]: a same-run A/B of two revisions
# end to end (bench/e2e's method, as `make bench` runs it), for judging a
# change by what it does to delivery rather than by a figure from another
# hour: this machine's speed drifts by 5-15 % between runs minutes apart.
#
# It builds `mailgate` of BASE_REV (A) and of NEW_REV (B; by default, or
# when NEW_REV is '', the working tree as it is, uncommitted changes
# included) with the flags scripts/bench.sh uses (cgo and -tags=openssl
# unless MAILGATE_OPENSSL=0). A committed revision is built from `git
# archive` in a temporary directory, removed on exit. One driver, bench/e2e
# of the working tree, makes the load for both binaries: it starts `BIN
# serve` itself, so the base revision need not have the driver's reporting.
#
# For each of the 8 configurations (postgres|sqlite x dual|ed25519 x
# batch|single) it runs A, B, A, B ... (REPS pairs, default 2), each run on a
# fresh database (PostgreSQL: a new database on the server `make test` uses,
# CHECKPOINT before, dropped after; SQLite: a new file) and a Redis of its
# own on a free loopback port (never 6379; no persistence), with COUNT
# messages (default 20000) of 10 KB relayed to Postfix's smtp-sink. With the
# defaults that is 32 runs, about 7 minutes on the 2-core machine when idle.
#
# It prints one line per run (configuration, binary, end-to-end msgs/s,
# accept msgs/s, accept p99 in ms: per request, so per 100 messages in batch
# mode), then the medians per configuration and binary with B's change
# against A, and the size of each revision's store package. Everything goes
# to ./data/ab/UTC-TIMESTAMP/: meta.tsv, runs.tsv, runs.jsonl (bench/e2e's
# JSON lines), medians.txt and one directory of logs per run. On exit,
# normal or not, it stops the driver (which stops its `mailgate serve` and
# smtp-sink), the run's Redis, and PostgreSQL if it started it, and drops the
# run's database.
#
# Installs what is missing: postfix (for smtp-sink; no mail server is set
# up), jq, python3, redis-server, postgresql-client.
#
# Environment: AB_CONFIGS, a subset of the configurations (e.g.
# "postgres/dual/batch sqlite/ed25519/single"); AB_SINK=go relays to
# bench/e2e's in-process go-smtp sink instead of smtp-sink; the PostgreSQL
# server is MAILGATE_TEST_POSTGRES_URL when set, else the one on
# 127.0.0.1:${MAILGATE_TEST_POSTGRES_PORT:-5432} (started when installed but
# not running, and then stopped on exit); MAILGATE_OPENSSL=0 builds both
# binaries without libcrypto.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"

usage() {
	echo "usage: $0 BASE_REV [NEW_REV] [REPS] [COUNT]  (NEW_REV '' or absent: the working tree)" >&2
	exit 2
}
(($# >= 1 && $# <= 4)) || usage
base_rev=$1
new_rev=${2:-}
reps=${3:-2}
count=${4:-20000}
[[ $reps =~ ^[1-9][0-9]*$ && $count =~ ^[1-9][0-9]*$ ]] || usage
configs=${AB_CONFIGS:-}
if [[ -z $configs ]]; then
	for engine in postgres sqlite; do
		for sign in dual ed25519; do
			for mode in batch single; do
				configs+="$engine/$sign/$mode "
			done
		done
	done
fi
for config in $configs; do
	[[ $config =~ ^(postgres|sqlite)/(dual|ed25519)/(batch|single)$ ]] ||
		die "unknown configuration $config in AB_CONFIGS (want ENGINE/SIGNING/MODE, e.g. sqlite/dual/batch)"
done
out=$MG_ROOT/data/ab/$(date -u +%Y%m%dT%H%M%SZ)
work=
sink=go

# State of the current run, for cleanup.
run_dir=
driver_pid=
redis_pid=
pg_db=
db_url=

cleanup() {
	stop_driver
	stop_redis
	drop_database
	[[ -n $run_dir ]] && rm -f "$run_dir"/ab.db*
	stop_started_postgres
	[[ -n $work ]] && rm -rf "$work"
	return 0
}

# describe REV prints REV's short commit and subject, or says "working tree".
describe() {
	if [[ -z $1 ]]; then
		printf 'working tree (HEAD %s, %d changed files)' "$(git rev-parse --short HEAD)" \
			"$(git status --porcelain --untracked-files=no | wc -l)"
	else
		git log -1 --format='%h %s' "$1"
	fi
}

# source_dir REV NAME prints where REV's sources are: the working tree for
# '', else $work/NAME, where extract_sources puts them.
source_dir() {
	if [[ -z $1 ]]; then
		printf '%s\n' "$MG_ROOT"
	else
		printf '%s\n' "$work/$2"
	fi
}

# extract_sources REV DIR writes REV's tree (`git archive`) into DIR.
extract_sources() {
	mkdir -p "$2"
	git archive --format=tar "$1" | tar -x -C "$2"
}

# build_mailgate SRC OUT builds SRC's mailgate into OUT.
build_mailgate() {
	log "go build -o $2 ./cmd/mailgate (in $1)"
	(cd "$1" && go build -o "$2" ./cmd/mailgate)
}

# store_size SRC prints the size of SRC's store package: its non-test .go
# files, their lines (all, and code: neither blank nor comment-only) and
# their top-level func declarations.
store_size() {
	local -a files
	mapfile -t files < <(find "$1/store" -maxdepth 1 -name '*.go' ! -name '*_test.go' 2>/dev/null | sort)
	if ((${#files[@]} == 0)); then
		echo "no store package"
		return
	fi
	printf '%d files, %d lines (%d code), %d funcs\n' "${#files[@]}" "$(cat "${files[@]}" | wc -l)" \
		"$(cat "${files[@]}" | grep -cvE '^[[:space:]]*(//.*)?$')" "$(cat "${files[@]}" | grep -cE '^func ')"
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# redis_ours PORT: the Redis answering on PORT is the one this run started
# (its process id is in the run's pid file), not somebody else's that took
# the port first: bench/e2e flushes the Redis it is given.
redis_ours() {
	local pid
	pid=$(cat "$run_dir/redis.pid" 2>/dev/null) || return 1
	[[ -n $pid ]] && redis-cli -h 127.0.0.1 -p "$1" info server 2>/dev/null | tr -d '\r' | grep -qx "process_id:$pid"
}

# start_redis starts the run's Redis on a free loopback port (never 6379)
# and sets redis_port and redis_pid.
start_redis() {
	local try
	for try in 1 2 3 4 5; do
		redis_port=$(free_port)
		[[ $redis_port == 6379 ]] && continue
		redis_up "$redis_port" && continue
		rm -f "$run_dir/redis.pid"
		redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --save "" --appendonly no \
			--maxmemory-policy noeviction --dir "$run_dir" --pidfile "$run_dir/redis.pid" \
			--logfile "$run_dir/redis.log" || continue
		if wait_until 100 redis_ours "$redis_port"; then
			redis_pid=$(<"$run_dir/redis.pid")
			return 0
		fi
		stop_redis
		log "Redis attempt $try on port $redis_port failed (see $run_dir/redis.log)"
	done
	die "could not start a private Redis (see $run_dir/redis.log)"
}

# stop_redis stops the run's Redis by its process id (no persistence: it
# saves nothing).
stop_redis() {
	local pid=$redis_pid
	if [[ -z $pid && -n $run_dir && -s $run_dir/redis.pid ]]; then
		pid=$(<"$run_dir/redis.pid")
	fi
	stop_process "$pid"
	redis_pid=
	redis_port=
	[[ -n $run_dir ]] && rm -f "$run_dir/redis.pid"
	return 0
}

psql_admin() {
	PGOPTIONS='-c client_min_messages=warning' psql -w -X -q -v ON_ERROR_STOP=1 "$MAILGATE_TEST_POSTGRES_URL" "$@"
}

# fresh_database ENGINE N sets db_url to a fresh database (and pg_db to its
# name on PostgreSQL, for cleanup).
fresh_database() {
	case $1 in
	postgres)
		pg_db=ab_$$_$2
		psql_admin -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db" -c CHECKPOINT >&2
		local admin=$MAILGATE_TEST_POSTGRES_URL query=sslmode=disable
		[[ $admin == *\?* ]] && query=${admin#*\?}
		admin=${admin%%\?*}
		db_url=$(printf '%s/%s?%s' "${admin%/*}" "$pg_db" "$query")
		;;
	sqlite) db_url=sqlite:$run_dir/ab.db ;;
	esac
}

drop_database() {
	[[ -n $pg_db ]] || return 0
	psql_admin -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >&2 || warn "could not drop database $pg_db"
	pg_db=
}

# stop_driver ends bench/e2e with SIGTERM (it stops `mailgate serve`, for up
# to 20 s, and its sink), then kills its whole process group after 30 s.
stop_driver() {
	[[ -n $driver_pid ]] || return 0
	if kill -0 "$driver_pid" 2>/dev/null; then
		kill -TERM "$driver_pid" 2>/dev/null || true
		if ! wait_until 300 process_gone "$driver_pid"; then
			warn "bench/e2e did not stop within 30 s; killing its process group"
			kill -KILL -- "-$driver_pid" 2>/dev/null || true
		fi
	fi
	wait "$driver_pid" 2>/dev/null || true
	driver_pid=
}

# one_run N CONFIG WHICH BIN: one run; appends to runs.tsv and runs.jsonl
# and prints its line.
one_run() {
	local n=$1 config=$2 which=$3 bin=$4 engine sign mode algs
	local -a line
	IFS=/ read -r engine sign mode <<<"$config"
	algs=ed25519
	[[ $sign == dual ]] && algs=rsa,ed25519
	run_dir=$out/run-$n-${config//\//-}-$which
	mkdir -p "$run_dir"
	start_redis
	fresh_database "$engine" "$n"
	# A process group of its own (setsid), so that cleanup can kill the
	# driver with its server and sink if it hangs.
	setsid "$work/bench-e2e" -bin "$bin" -db "$db_url" -redis "redis://127.0.0.1:$redis_port/0" \
		-algorithms "$algs" -label "$engine" -sink "$sink" -n "$count" -modes "$mode" \
		-logdir "$run_dir" -out "$run_dir/result.json" >"$run_dir/driver.txt" 2>&1 &
	driver_pid=$!
	if ! wait "$driver_pid"; then
		driver_pid=
		die "run $n ($config, $which) failed: $(tail -n 5 "$run_dir/driver.txt")"
	fi
	driver_pid=
	stop_redis
	drop_database
	rm -f "$run_dir"/ab.db*
	jq -c --arg c "$config" --arg w "$which" '. + {config: $c, binary: $w}' \
		"$run_dir/result.json" >>"$out/runs.jsonl"
	mapfile -t line < <(jq -r --arg c "$config" --arg w "$which" \
		'$c, $w, (.delivered_per_second | round), (.accepted_per_second | round), (.accept_p99_ms * 10 | round / 10)' \
		"$run_dir/result.json")
	(IFS=$'\t' && printf '%s\n' "${line[*]}") >>"$out/runs.tsv"
	printf '%-24s %-3s %9s %9s %9s\n' "${line[@]}"
}

# medians prints, per configuration, the median of each figure for A and B
# and B's change against A.
medians() {
	python3 - "$out/runs.tsv" <<'EOF'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    c, w, e2e, acc, p99 = line.rstrip("\n").split("\t")
    if c not in order:
        order.append(c)
    runs[(c, w)].append((float(e2e), float(acc), float(p99)))
def med(c, w, i):
    v = [r[i] for r in runs.get((c, w), [])]
    return statistics.median(v) if v else float("nan")
def delta(a, b):
    return f"{(b - a) / a * 100:+.1f}%" if a == a and b == b and a else "n/a"
print("\nmedians: end to end and accept in msgs/s, accept p99 in ms per POST")
print(f"{'config':24} {'e2e A':>7} {'e2e B':>7} {'Δe2e':>7}  {'acc A':>7} {'acc B':>7} {'Δacc':>7}  {'p99 A':>7} {'p99 B':>7}  runs")
for c in order:
    ea, eb = med(c, "A", 0), med(c, "B", 0)
    aa, ab = med(c, "A", 1), med(c, "B", 1)
    pa, pb = med(c, "A", 2), med(c, "B", 2)
    n = f"{len(runs.get((c, 'A'), []))}+{len(runs.get((c, 'B'), []))}"
    print(f"{c:24} {ea:7.0f} {eb:7.0f} {delta(ea, eb):>7}  {aa:7.0f} {ab:7.0f} {delta(aa, ab):>7}  {pa:7.1f} {pb:7.1f}  {n}")
EOF
}

main() {
	local src_a src_b size_a size_b desc_a desc_b start n=0 r config
	git rev-parse --verify --quiet "$base_rev^{commit}" >/dev/null || die "not a revision: $base_rev"
	[[ -z $new_rev ]] || git rev-parse --verify --quiet "$new_rev^{commit}" >/dev/null ||
		die "not a revision: $new_rev"
	require_go
	use_openssl
	install_for_commands jq:jq python3:python3 redis-server:redis-server redis-cli:redis-tools
	if [[ ${AB_SINK:-smtp-sink} != go ]]; then
		[[ -x /usr/sbin/smtp-sink ]] || install_missing postfix
		sink=/usr/sbin/smtp-sink
	fi
	mkdir -p "$out"
	work=$(mktemp -d /tmp/mailgate-ab.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	if [[ " $configs " == *" postgres/"* ]]; then
		install_for_commands psql:postgresql-client
		ensure_test_postgres
	fi

	desc_a=$(describe "$base_rev")
	desc_b=$(describe "$new_rev")
	src_a=$(source_dir "$base_rev" src-a)
	src_b=$(source_dir "$new_rev" src-b)
	extract_sources "$base_rev" "$src_a"
	[[ -z $new_rev ]] || extract_sources "$new_rev" "$src_b"
	mkdir -p "$work/a" "$work/b"
	build_mailgate "$src_a" "$work/a/mailgate"
	build_mailgate "$src_b" "$work/b/mailgate"
	log "go build -o $work/bench-e2e ./bench/e2e (the working tree's driver, for both)"
	go build -o "$work/bench-e2e" ./bench/e2e
	size_a=$(store_size "$src_a")
	size_b=$(store_size "$src_b")

	log "A = $desc_a"
	log "B = $desc_b"
	log "sink $sink, $reps pair(s) of $count messages per configuration; output in $out"
	printf 'A\t%s\nB\t%s\nsize A\t%s\nsize B\t%s\nreps\t%s\ncount\t%s\nsink\t%s\nGOFLAGS\t%s\nstarted\t%s\n' \
		"$desc_a" "$desc_b" "$size_a" "$size_b" "$reps" "$count" "$sink" "${GOFLAGS:-}" \
		"$(date -u +%FT%TZ)" >"$out/meta.tsv"
	: >"$out/runs.tsv"
	: >"$out/runs.jsonl"
	printf '%-24s %-3s %9s %9s %9s\n' config bin 'e2e/s' 'accept/s' 'p99 ms'
	start=$SECONDS
	for config in $configs; do
		for ((r = 1; r <= reps; r++)); do
			one_run $((++n)) "$config" A "$work/a/mailgate"
			one_run $((++n)) "$config" B "$work/b/mailgate"
		done
	done
	{
		medians
		printf '\nA = %s\nB = %s\nstore, A: %s\nstore, B: %s\n%d runs in %d s (%s)\n' "$desc_a" "$desc_b" \
			"$size_a" "$size_b" "$n" $((SECONDS - start)) "$out"
	} | tee "$out/medians.txt"
}

main "$@"
