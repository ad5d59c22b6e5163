#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# bench.sh: `make bench`, the accept rate of POST /v1/messages, then the Go
# micro benchmarks. Not a test: it prints figures and exits 0 unless a step
# breaks.
#
# For each engine (postgres: database mailgate_bench dropped and recreated on
# the test server; sqlite: a temporary file) it starts a private Redis on
# 127.0.0.1:6391 (flushed, no persistence), runs `mailgate migrate up`,
# creates an API key, starts `mailgate api` (API role only: no worker) on
# 127.0.0.1:8089 with the per-key rate limit off, and drives it with wrk
# (bench/post_message.lua). Results go to ./data/bench/; everything the script
# started is stopped on exit. The bench database is kept for inspection.
#
# Environment: MAILGATE_BENCH_ENGINES (default "postgres sqlite"),
# MAILGATE_BENCH_DURATION (wrk -d, default 20s), MAILGATE_BENCH_THREADS
# (default 2), MAILGATE_BENCH_CONNECTIONS (default 64), MAILGATE_BENCH_GO=0
# skips the Go micro benchmarks. The PostgreSQL server is the one `make test`
# uses (MAILGATE_TEST_POSTGRES_URL / MAILGATE_TEST_POSTGRES_PORT).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"
require_go

redis_port=6391
listen=127.0.0.1:8089
engines=${MAILGATE_BENCH_ENGINES:-postgres sqlite}
duration=${MAILGATE_BENCH_DURATION:-20s}
threads=${MAILGATE_BENCH_THREADS:-2}
connections=${MAILGATE_BENCH_CONNECTIONS:-64}
out=$MG_ROOT/data/bench
work=
api_pid=
wrk_pid=
started_redis=0

cleanup() {
	stop_process "$wrk_pid"
	stop_process "$api_pid"
	if [[ $started_redis == 1 ]]; then
		redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
	fi
	stop_started_postgres
	[[ -n $work ]] && rm -rf "$work"
	return 0
}

# start_bench_redis: a throwaway Redis for the queue; refuses a port in use
# so it never flushes somebody else's data.
start_bench_redis() {
	if redis_up "$redis_port"; then
		die "something already answers on 127.0.0.1:$redis_port (the bench Redis port); stop it: redis-cli -p $redis_port shutdown nosave"
	fi
	redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes --save "" \
		--appendonly no --maxmemory-policy noeviction --dir "$work" \
		--pidfile "$work/redis.pid" --logfile "$out/redis.log"
	started_redis=1
	wait_until 100 redis_up "$redis_port" || die "bench Redis did not answer (see $out/redis.log)"
}

# postgres_bench_url recreates mailgate_bench and prints its URL.
postgres_bench_url() {
	local admin=$MAILGATE_TEST_POSTGRES_URL query=sslmode=disable
	[[ $admin == *\?* ]] && query=${admin#*\?}
	local base=${admin%%\?*}
	PGOPTIONS='-c client_min_messages=warning' psql -w -X -q -v ON_ERROR_STOP=1 "$admin" \
		-c 'DROP DATABASE IF EXISTS mailgate_bench WITH (FORCE)' \
		-c 'CREATE DATABASE mailgate_bench' >&2
	printf '%s/mailgate_bench?%s\n' "${base%/*}" "$query"
}

# database_url ENGINE prints a fresh, empty database for ENGINE.
database_url() {
	case $1 in
	postgres) postgres_bench_url ;;
	sqlite)
		rm -f "$work"/bench.db*
		printf 'sqlite:%s/bench.db\n' "$work"
		;;
	*) die "unknown engine $1 (want postgres or sqlite)" ;;
	esac
}

api_ready() { curl -fsS -o /dev/null --max-time 1 "http://$listen/readyz"; }

# wait_api_ready polls /readyz for up to 30 s while the server lives.
wait_api_ready() {
	local log=$1 i
	for ((i = 0; i < 300; i++)); do
		api_ready 2>/dev/null && return 0
		if process_gone "$api_pid"; then
			tail -n 20 "$log" >&2
			die "mailgate api exited before it was ready (log: $log)"
		fi
		sleep 0.1
	done
	tail -n 20 "$log" >&2
	die "mailgate api not ready on $listen after 30 s (log: $log)"
}

# start_api ENGINE TOKEN starts the API role only (the worker stays idle).
start_api() {
	local log=$out/api-$1.log
	if api_ready 2>/dev/null; then
		die "something already answers on $listen; stop it first"
	fi
	MAILGATE_LISTEN=$listen MAILGATE_API_RATE_LIMIT=0 MAILGATE_ALLOWED_SENDER_DOMAINS=example.com \
		./bin/mailgate api >"$log" 2>&1 &
	api_pid=$!
	wait_api_ready "$log"
}

# summarize ENGINE FILE prints one line of figures from wrk's output.
summarize() {
	awk -v engine="$1" '
	function ms(v) {
		if (v ~ /us$/) return v / 1000
		if (v ~ /ms$/) return v + 0
		if (v ~ /m$/) return v * 60000
		if (v ~ /s$/) return v * 1000
		return v
	}
	function secs(v) { return (v ~ /m$/) ? v * 60 : v + 0 }
	/requests in/ { total = $1; sub(/,$/, "", $4); elapsed = secs($4) }
	/^Requests\/sec:/ { rps = $2 }
	$1 == "50%" { p50 = $2 } $1 == "90%" { p90 = $2 } $1 == "99%" { p99 = $2 }
	/^non-202 responses:/ { bad = $3 }
	END {
		accepted = elapsed > 0 ? (total - bad) / elapsed : 0
		verdict = ""
		if (engine == "postgres")
			verdict = (accepted >= 3000 && ms(p99) < 20) ? "target met" : "target missed (>= 3000/s, p99 < 20 ms)"
		printf "%-9s %10s %11.0f %9s %9s %9s %8d  %s\n", engine, rps, accepted, p50, p90, p99, bad, verdict
	}' "$2"
}

# bench_engine ENGINE: fresh database and queue, key, server, wrk.
bench_engine() {
	local engine=$1 token
	log "[$engine] preparing"
	redis-cli -h 127.0.0.1 -p "$redis_port" flushall >/dev/null
	MAILGATE_DATABASE_URL=$(database_url "$engine")
	export MAILGATE_DATABASE_URL MAILGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	./bin/mailgate migrate up >"$out/migrate-$engine.log" 2>&1 ||
		die "[$engine] mailgate migrate up failed (see $out/migrate-$engine.log)"
	token=$(./bin/mailgate keys create --name bench --scope messages:send 2>"$out/keys-$engine.log") ||
		die "[$engine] mailgate keys create failed (see $out/keys-$engine.log)"
	[[ $token =~ ^mg_[A-Za-z0-9_]+$ ]] || die "[$engine] keys create did not print a token alone on stdout"
	start_api "$engine"
	log "[$engine] wrk -t$threads -c$connections -d$duration --latency -s bench/post_message.lua http://$listen/v1/messages"
	# wrk runs in the background so that Ctrl-C reaches our trap during wait
	# (wrk exits cleanly on SIGINT, and bash would then carry on).
	MAILGATE_BENCH_TOKEN=$token wrk -t"$threads" -c"$connections" -d"$duration" --latency \
		-s bench/post_message.lua "http://$listen/v1/messages" >"$out/wrk-$engine.txt" 2>&1 &
	wrk_pid=$!
	wait "$wrk_pid" || die "[$engine] wrk failed: $(tail -n 3 "$out/wrk-$engine.txt")"
	wrk_pid=
	cat "$out/wrk-$engine.txt"
	stop_process "$api_pid"
	api_pid=
	summarize "$engine" "$out/wrk-$engine.txt" >>"$out/summary.txt"
}

# go_benchmarks runs every Go benchmark (no tests) one package at a time, so
# packages do not compete for the two cores.
go_benchmarks() {
	local file
	file=$out/go-bench-$(date -u +%Y%m%dT%H%M%SZ).txt
	log "go test -run '^\$' -bench . -benchmem -p 1 ./... (output: $file)"
	# The gateway's settings from bench_engine must not reach the tests.
	env -u MAILGATE_DATABASE_URL -u MAILGATE_REDIS_URL \
		go test -run '^$' -bench . -benchmem -p 1 ./... 2>&1 | tee "$file"
}

main() {
	local engine status=0
	install_for_commands redis-server:redis-server redis-cli:redis-tools wrk:wrk curl:curl
	if [[ " $engines " == *" postgres "* ]]; then
		if [[ -z ${MAILGATE_TEST_POSTGRES_URL:-} ]]; then
			install_missing postgresql
		else
			install_for_commands psql:postgresql-client
		fi
	fi
	mkdir -p "$out" bin
	work=$(mktemp -d /tmp/mailgate-bench.XXXXXX)
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	if [[ " $engines " == *" postgres "* ]]; then
		ensure_test_postgres
	fi
	start_bench_redis
	log "go build -o ./bin/mailgate ./cmd/mailgate"
	go build -o ./bin/mailgate ./cmd/mailgate
	printf '%-9s %10s %11s %9s %9s %9s %8s\n' engine 'req/s' 'accepted/s' p50 p90 p99 non-202 >"$out/summary.txt"
	for engine in $engines; do
		bench_engine "$engine"
	done
	if [[ ${MAILGATE_BENCH_GO:-1} != 0 ]]; then
		go_benchmarks || status=$?
	fi
	printf '\nPOST /v1/messages, wrk -t%s -c%s -d%s, %s cores (also in %s):\n' \
		"$threads" "$connections" "$duration" "$(nproc)" "$out/summary.txt"
	cat "$out/summary.txt"
	return "$status"
}

main "$@"
