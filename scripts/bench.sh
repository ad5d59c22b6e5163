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
# Then the end-to-end delivery benchmark (bench/e2e): for each engine and
# each signing choice (dual RSA-2048 + Ed25519, Ed25519 only) on a fresh
# database, `mailgate serve` relays to Postfix's smtp-sink (installed with
# postfix when missing, started on a free loopback port by bench/e2e) with
# every limit off; n messages of 10 KB are POSTed (batches of 100, then single POSTs
# from 32 clients) and messages/s is measured from the first POST to the
# n-th message at the sink. A CPU profile of the server is taken during
# each first mode (data/bench/cpu-*.prof, top functions in cpu-*.txt),
# and the DKIM sign rate alone comes from mta's BenchmarkSign*. Summary:
# data/bench/e2e-summary.txt (JSON lines in e2e.jsonl).
#
# Then the web console's benchmark (bench/console), per engine: a database
# (PostgreSQL mailgate_cbench, dropped and recreated; SQLite, a temporary
# file) migrated with `mailgate migrate up` and seeded with
# MAILGATE_BENCH_CONSOLE_ROWS (default 1000000) messages of the default
# project over the last 8 days, a tenth as many of a second project, and
# their recipients, tags, payloads and events (the time it took is
# printed); each page of the console (the list, its second page, filters,
# the htmx refresh, a message, the overview) requested in rounds, 10
# warm-up rounds then up to 200 (no round starts after 3 minutes), one
# request at a time, by `bench-console measure`, which serves
# the console in process and times each request around its handler
# (p50/p95/max); then `mailgate api` on that database and wrk as above,
# six runs alternated without (A) and with (B) an operator browsing the
# console (`bench-console browse`: one page view a second cycling through
# those pages, and the list's own refresh every 5 s), in the order A B B
# A A B, every run reported. Summary: data/bench/console-summary.txt.
#
# Environment: MAILGATE_BENCH_ENGINES (default "postgres sqlite"),
# MAILGATE_BENCH_DURATION (wrk -d, default 20s), MAILGATE_BENCH_THREADS
# (default 2), MAILGATE_BENCH_CONNECTIONS (default 32), MAILGATE_BENCH_GO=0
# skips the Go micro benchmarks, MAILGATE_BENCH_E2E=0 the end-to-end one,
# MAILGATE_BENCH_WEBHOOKS=0 its webhook runs (per engine, Ed25519 batches:
# the drain of a backlog to a receiver on loopback, then mail without webhooks and
# with a receiver answering after 10 s, alternated),
# MAILGATE_BENCH_E2E_N (default 20000) and MAILGATE_BENCH_E2E_MODES
# (default "batch,single") size it, MAILGATE_BENCH_SINK=go relays to
# bench/e2e's in-process go-smtp sink instead of smtp-sink (it takes about
# a seventh of the two cores at these rates, smtp-sink far less). The PostgreSQL server is the one `make test`
# uses (MAILGATE_TEST_POSTGRES_URL / MAILGATE_TEST_POSTGRES_PORT).
# MAILGATE_BENCH_ACCEPT=0 skips the first accept-rate runs,
# MAILGATE_BENCH_CONSOLE=0 the console's benchmark, and
# MAILGATE_BENCH_CONSOLE_ROWS sizes it. MAILGATE_BENCH_REDIS_PORT (default
# 6391) and MAILGATE_BENCH_LISTEN (default 127.0.0.1:8089) move the private
# Redis and the API, for two runs side by side.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"
require_go
use_openssl

redis_port=${MAILGATE_BENCH_REDIS_PORT:-6391}
listen=${MAILGATE_BENCH_LISTEN:-127.0.0.1:8089}
engines=${MAILGATE_BENCH_ENGINES:-postgres sqlite}
duration=${MAILGATE_BENCH_DURATION:-20s}
threads=${MAILGATE_BENCH_THREADS:-2}
connections=${MAILGATE_BENCH_CONNECTIONS:-32}
out=$MG_ROOT/data/bench
work=
sink=go
api_pid=
wrk_pid=
browse_pid=
started_redis=0

cleanup() {
	stop_process "$wrk_pid"
	stop_process "$browse_pid"
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

# postgres_bench_url [NAME] recreates the database NAME (default
# mailgate_bench) and prints its URL.
postgres_bench_url() {
	local admin=$MAILGATE_TEST_POSTGRES_URL query=sslmode=disable name=${1:-mailgate_bench}
	[[ $admin == *\?* ]] && query=${admin#*\?}
	local base=${admin%%\?*}
	PGOPTIONS='-c client_min_messages=warning' psql -w -X -q -v ON_ERROR_STOP=1 "$admin" \
		-c "DROP DATABASE IF EXISTS $name WITH (FORCE)" \
		-c "CREATE DATABASE $name" >&2
	printf '%s/%s?%s\n' "${base%/*}" "$name" "$query"
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

# e2e_one ENGINE ALGORITHMS: one end-to-end run on a fresh database.
e2e_one() {
	local engine=$1 algs=$2 tag
	tag=$engine-${algs/,/+}
	log "[$tag] end-to-end: POST → sink, ${MAILGATE_BENCH_E2E_N:-20000} messages per mode"
	./bin/bench-e2e -bin ./bin/mailgate -db "$(database_url "$engine")" \
		-redis "redis://127.0.0.1:$redis_port/0" -algorithms "$algs" -label "$engine" \
		-sink "$sink" -n "${MAILGATE_BENCH_E2E_N:-20000}" -modes "${MAILGATE_BENCH_E2E_MODES:-batch,single}" \
		-cpuprofile "$out/cpu-$tag.prof" -profile-seconds 10 -logdir "$out" \
		-out "$out/e2e.jsonl" | tee -a "$out/e2e-summary.txt" ||
		die "[$tag] end-to-end benchmark failed (server log: $out/serve-$engine.log)"
	go tool pprof -top -nodecount=40 ./bin/mailgate "$out/cpu-$tag.prof" >"$out/cpu-$tag.txt" 2>/dev/null || true
	go tool pprof -top -cum -nodecount=60 ./bin/mailgate "$out/cpu-$tag.prof" >"$out/cpu-$tag-cum.txt" 2>/dev/null || true
}

# dkim_sign_rate: mta's sign benchmarks alone, as signatures per second.
dkim_sign_rate() {
	log "DKIM sign rate: go test -run '^\$' -bench 'BenchmarkSign' ./mta"
	env -u MAILGATE_DATABASE_URL -u MAILGATE_REDIS_URL \
		go test -run '^$' -bench 'BenchmarkSign' -benchtime 2s ./mta >"$out/dkim-sign.txt" 2>&1 ||
		{ warn "mta sign benchmarks failed (see $out/dkim-sign.txt)"; return 0; }
	awk '/^BenchmarkSign/ { for (i = 1; i < NF; i++) if ($(i + 1) == "ns/op")
		printf "%-28s %8.0f messages signed/s (1 core)\n", $1, 1e9 / $i }' \
		"$out/dkim-sign.txt" | tee -a "$out/e2e-summary.txt"
}

# webhook_one ENGINE WEBHOOK: one Ed25519 batch run with -webhook WEBHOOK
# ("" none, "backlog", "10s") on a fresh database. A backlog run sends
# 6,000 messages, so that mail takes less than the 15 s webhook timeout
# its held deliveries wait under.
webhook_one() {
	local engine=$1 hook=$2 n=${MAILGATE_BENCH_E2E_N:-20000}
	[[ $hook == backlog ]] && n=6000
	log "[$engine] webhooks: ${hook:-none}"
	./bin/bench-e2e -bin ./bin/mailgate -db "$(database_url "$engine")" \
		-redis "redis://127.0.0.1:$redis_port/0" -algorithms ed25519 -label "$engine" \
		-sink "$sink" -n "$n" -modes batch -webhook "$hook" -logdir "$out" \
		-out "$out/e2e.jsonl" | tee -a "$out/e2e-summary.txt" ||
		die "[$engine] webhook benchmark failed (server log: $out/serve-$engine.log)"
}

# webhook_benchmarks: per engine, the drain of a backlog of deliveries
# (target >= 2,000 deliveries/s), then mail without webhooks and with a
# receiver answering after 10 s, alternated twice (target: within 10 %).
webhook_benchmarks() {
	local engine hook
	for engine in $engines; do
		for hook in backlog "" 10s "" 10s; do
			webhook_one "$engine" "$hook"
		done
	done
}

# e2e_benchmarks: every engine × {dual, ed25519}, then the sign rate.
e2e_benchmarks() {
	local engine algs
	sink=go
	if [[ ${MAILGATE_BENCH_SINK:-smtp-sink} != go ]]; then
		[[ -x /usr/sbin/smtp-sink ]] || install_missing postfix
		sink=/usr/sbin/smtp-sink
	fi
	log "go build -o ./bin/bench-e2e ./bench/e2e"
	go build -o ./bin/bench-e2e ./bench/e2e
	printf '%-9s %-12s %-7s %6s %10s %11s %8s  %s\n' engine algorithms mode n 'accepted/s' 'delivered/s' seconds verdict \
		>"$out/e2e-summary.txt"
	: >"$out/e2e.jsonl"
	for engine in $engines; do
		for algs in rsa,ed25519 ed25519; do
			e2e_one "$engine" "$algs"
		done
	done
	if [[ ${MAILGATE_BENCH_WEBHOOKS:-1} != 0 ]]; then
		webhook_benchmarks
	fi
	dkim_sign_rate
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

# console_database_url ENGINE prints a fresh, empty database for the
# console's benchmark.
console_database_url() {
	case $1 in
	postgres) postgres_bench_url mailgate_cbench ;;
	sqlite)
		rm -f "$work"/console.db*
		printf 'sqlite:%s/console.db\n' "$work"
		;;
	*) die "unknown engine $1 (want postgres or sqlite)" ;;
	esac
}

# console_run ENGINE ARM N SEND READ: one wrk run against the running API,
# with (ARM B) or without (A) an operator browsing with the key READ.
console_run() {
	local engine=$1 arm=$2 n=$3 send=$4 read=$5 file
	file=$out/wrk-console-$engine-$n$arm.txt
	if [[ $arm == B ]]; then
		MAILGATE_BENCH_TOKEN=$read ./bin/bench-console browse -url "http://$listen" -duration "$duration" \
			>"$out/operator-$engine-$n.txt" 2>&1 &
		browse_pid=$!
	fi
	MAILGATE_BENCH_TOKEN=$send wrk -t"$threads" -c"$connections" -d"$duration" --latency \
		-s bench/post_message.lua "http://$listen/v1/messages" >"$file" 2>&1 &
	wrk_pid=$!
	wait "$wrk_pid" || die "[$engine] wrk failed: $(tail -n 3 "$file")"
	wrk_pid=
	if [[ $arm == B ]]; then
		wait "$browse_pid" || die "[$engine] the operator failed: $(tail -n 3 "$out/operator-$engine-$n.txt")"
		browse_pid=
	fi
	{
		printf 'run %d, %s, load average %s: ' "$n" "$([[ $arm == A ]] && echo 'A, no operator' || echo 'B, operator browsing')" \
			"$(cut -d' ' -f1-3 /proc/loadavg)"
		summarize "$engine-$arm" "$file"
		if [[ $arm == B ]]; then
			sed 's/^/    /' "$out/operator-$engine-$n.txt"
		fi
	} | tee -a "$out/console-summary.txt"
}

# console_compare ENGINE: the medians of each arm's accepted/s and their
# difference, from console-summary.txt.
console_compare() {
	awk -v engine="$1" '
	function median(a, n,   i, j, t) {
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j - 1] > a[j]; j--) { t = a[j]; a[j] = a[j - 1]; a[j - 1] = t }
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	$0 ~ "^run .*: " engine "-A " { a[++na] = $(NF - 4); if (!mina || a[na] < mina) mina = a[na]; if (a[na] > maxa) maxa = a[na] }
	$0 ~ "^run .*: " engine "-B " { b[++nb] = $(NF - 4) }
	END {
		if (na == 0 || nb == 0) exit
		ma = median(a, na); mb = median(b, nb)
		printf "%s: accepted/s, median of %d runs without an operator %.0f, with %.0f: %+.1f %%; the runs without spread over %.1f %% of their median\n",
			engine, na, ma, mb, (mb - ma) / ma * 100, (maxa - mina) / ma * 100
	}' "$out/console-summary.txt" | tee -a "$out/console-summary.txt"
}

# console_engine ENGINE: seed, the server time of each page, then the
# accept rate without and with an operator, alternated A B B A A B.
console_engine() {
	local engine=$1 url send reader arm n=0
	log "[$engine] console: seeding ${MAILGATE_BENCH_CONSOLE_ROWS:-1000000} messages"
	redis-cli -h 127.0.0.1 -p "$redis_port" flushall >/dev/null
	url=$(console_database_url "$engine")
	export MAILGATE_DATABASE_URL=$url MAILGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	./bin/mailgate migrate up >"$out/migrate-console-$engine.log" 2>&1 ||
		die "[$engine] mailgate migrate up failed (see $out/migrate-console-$engine.log)"
	./bin/bench-console seed -db "$url" -rows "${MAILGATE_BENCH_CONSOLE_ROWS:-1000000}" |
		sed "s/^/$engine: /" | tee -a "$out/console-summary.txt" || die "[$engine] seeding failed"
	log "[$engine] console: server time per page (bench-console measure)"
	./bin/bench-console measure -db "$url" -label "$engine" -max-time 3m | tee -a "$out/console-summary.txt" ||
		die "[$engine] measuring the console failed"
	send=$(./bin/mailgate keys create --name bench --scope messages:send 2>>"$out/keys-$engine.log") &&
		reader=$(./bin/mailgate keys create --name operator --scope messages:read 2>>"$out/keys-$engine.log") ||
		die "[$engine] mailgate keys create failed (see $out/keys-$engine.log)"
	start_api "console-$engine"
	log "[$engine] console: wrk as above, A B B A A B (B: an operator browsing)"
	for arm in A B B A A B; do
		n=$((n + 1))
		console_run "$engine" "$arm" "$n" "$send" "$reader"
	done
	stop_process "$api_pid"
	api_pid=
	console_compare "$engine"
}

# console_benchmarks: the console's benchmark on every engine.
console_benchmarks() {
	local engine
	log "go build -o ./bin/bench-console ./bench/console"
	go build -o ./bin/bench-console ./bench/console
	printf 'Console, %s messages, %s cores, %s\n' "${MAILGATE_BENCH_CONSOLE_ROWS:-1000000}" "$(nproc)" \
		"$(date -u +%Y-%m-%dT%H:%MZ)" >"$out/console-summary.txt"
	for engine in $engines; do
		console_engine "$engine"
	done
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
	if [[ ${MAILGATE_BENCH_ACCEPT:-1} != 0 ]]; then
		for engine in $engines; do
			bench_engine "$engine"
		done
	fi
	if [[ ${MAILGATE_BENCH_CONSOLE:-1} != 0 ]]; then
		console_benchmarks
	fi
	if [[ ${MAILGATE_BENCH_E2E:-1} != 0 ]]; then
		e2e_benchmarks
	fi
	if [[ ${MAILGATE_BENCH_GO:-1} != 0 ]]; then
		go_benchmarks || status=$?
	fi
	printf '\nPOST /v1/messages, wrk -t%s -c%s -d%s, %s cores (also in %s):\n' \
		"$threads" "$connections" "$duration" "$(nproc)" "$out/summary.txt"
	cat "$out/summary.txt"
	if [[ ${MAILGATE_BENCH_CONSOLE:-1} != 0 ]]; then
		printf '\n'
		cat "$out/console-summary.txt"
	fi
	if [[ ${MAILGATE_BENCH_E2E:-1} != 0 ]]; then
		printf '\nEnd to end, POST → received at the sink, %s B bodies, %s cores (also in %s):\n' \
			10240 "$(nproc)" "$out/e2e-summary.txt"
		cat "$out/e2e-summary.txt"
	fi
	return "$status"
}

main "$@"

# --- inbound: poller throughput and bounce classification -----------------
# Runs after main: BenchmarkPollerDovecot (bounces in a private Dovecot →
# committed events over IMAP, 2000 messages, SQLite and PostgreSQL; target
# >= 300 msgs/s) and bounce's BenchmarkParseCorpus on one core (target >=
# 10,000 msgs/s). Raw output in data/bench/inbound.txt; the figures are
# appended to data/bench/summary.txt. MAILGATE_BENCH_INBOUND=0 skips it.
inbound_benchmarks() {
	local out=$MG_ROOT/data/bench
	[[ ${MAILGATE_BENCH_INBOUND:-1} != 0 ]] || return 0
	mkdir -p "$out"
	log "inbound: go test -run '^\$' -bench PollerDovecot -benchtime 2000x ./inbound/ and -bench ParseCorpus -cpu 1 ./bounce/"
	: >"$out/inbound.txt"
	env -u MAILGATE_DATABASE_URL -u MAILGATE_REDIS_URL \
		go test -run '^$' -bench 'PollerDovecot' -benchtime 2000x ./inbound/ >>"$out/inbound.txt" 2>&1 ||
		warn "inbound poller benchmark failed (see $out/inbound.txt)"
	env -u MAILGATE_DATABASE_URL -u MAILGATE_REDIS_URL \
		go test -run '^$' -bench 'ParseCorpus' -cpu 1 ./bounce/ >>"$out/inbound.txt" 2>&1 ||
		warn "bounce corpus benchmark failed (see $out/inbound.txt)"
	{
		printf '\nInbound (%s cores):\n' "$(nproc)"
		awk '/^Benchmark(PollerDovecot|ParseCorpus)/ { for (i = 1; i < NF; i++) if ($(i + 1) == "msgs/s") {
			target = ($1 ~ /ParseCorpus/) ? 10000 : 300
			printf "%-40s %10.0f msgs/s  %s\n", $1, $i, ($i >= target) ? "target met" : "target missed (>= " target "/s)" } }' \
			"$out/inbound.txt"
	} | tee -a "$out/summary.txt"
}
inbound_benchmarks
