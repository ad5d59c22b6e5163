#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# run.sh: `make run`, a working single-node gateway on this machine.
#
# The first run installs what is missing (redis-server and the C toolchain
# for the openssl build, with apt) and builds Mailpit and ./bin/mailgate: a
# few minutes, one line per step on the terminal, the tools' own output in
# ./data/setup.log (its last lines are shown when a step fails). Later runs
# start in seconds.
#
# It starts a private Redis with AOF persistence under ./data/redis on
# 127.0.0.1:${MAILGATE_RUN_REDIS_PORT:-6390} (a Redis already on 6379 is left
# alone) and runs `mailgate serve` in the foreground on SQLite
# (./data/mailgate.db), listening on ${MAILGATE_LISTEN:-127.0.0.1:8080}. The
# environment it uses is written to ./data/env, with absolute paths, so a
# second terminal can `source ./data/env` and run mailgate commands from any
# directory against the same database.
#
# Mail goes to Mailpit, a local SMTP sink with an HTTP API (built once into
# ./.tools/bin by scripts/tools.sh): SMTP on
# 127.0.0.1:${MAILGATE_RUN_MAILPIT_SMTP_PORT:-1025} (plaintext on loopback:
# tls=none), API on 127.0.0.1:${MAILGATE_RUN_MAILPIT_HTTP_PORT:-8025} (a
# Mailpit built with go install has no web UI assets: its page is blank, the
# API works), its store in ./data/mailpit. MAILGATE_RELAYS then points at it
# (a MAILGATE_RELAYS set by the user wins, and no Mailpit is started).
# MAILGATE_DNS_SERVER defaults to 127.0.0.1:53, so that the local gateway
# talks to loopback alone (domain verification then finds what a local
# resolver answers, or nothing; set it to check real DNS).
# MAILGATE_RETURN_PATH_DOMAIN defaults to bounces.example.com. A
# MAILGATE_MASTER_KEY is generated on the first run and kept in ./data/env
# (mode 600), so the DKIM keys it seals open after a restart; one set by the
# user wins.
#
# MAILGATE_RUN_DATA moves ./data (the database, Redis' AOF, Mailpit's store,
# env and setup.log) to another directory, e.g. for a second gateway beside
# the first, which then needs its own ports too (MAILGATE_LISTEN and the
# MAILGATE_RUN_*_PORT variables): on the first one's Redis port it would share
# that Redis, and the two gateways' queues with it.
#
# Ctrl-C stops mailgate, then Mailpit, then the private Redis if this script started it
# (MAILGATE_RUN_KEEP_REDIS=1 leaves it running). A Redis that already answered
# on the port is used and left alone. MAILGATE_DATABASE_URL (a relative
# sqlite:PATH is taken from the repository root and made absolute),
# MAILGATE_REDIS_URL (then no private Redis is started), MAILGATE_LISTEN and
# MAILGATE_ALLOWED_SENDER_DOMAINS set by the user win over the defaults.
#
# Sourced (`source scripts/run.sh`), it defines its functions and runs
# nothing (and leaves the caller's shell options alone): the tests call
# write_env that way.
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

redis_port=${MAILGATE_RUN_REDIS_PORT:-6390}
started_redis=0
mailgate_pid=
mailpit_pid=
mailpit_smtp_port=${MAILGATE_RUN_MAILPIT_SMTP_PORT:-1025}
mailpit_http_port=${MAILGATE_RUN_MAILPIT_HTTP_PORT:-8025}
# data is the directory of the run's state, absolute.
data=$(realpath -m "${MAILGATE_RUN_DATA:-$MG_ROOT/data}")

# short PATH prints PATH relative to the working directory when it is under
# it (./data/env), else as it is: for messages.
short() {
	case $1 in
	"$PWD"/*) printf './%s' "${1#"$PWD"/}" ;;
	*) printf '%s' "$1" ;;
	esac
}

# first_run: something the run needs is not installed or built yet.
first_run() {
	! command -v redis-server >/dev/null 2>&1 || [[ ! -x bin/mailgate ]] ||
		{ [[ -z ${MAILGATE_RELAYS:-} ]] && [[ ! -x .tools/bin/mailpit ]]; }
}

# start_private_redis: Redis for the gateway, durable (AOF, fsync every
# second), never evicting queued work, on loopback only.
start_private_redis() {
	mkdir -p "$data/redis"
	if redis_up "$redis_port"; then
		log "Redis: already answering on 127.0.0.1:$redis_port; using it"
		return 0
	fi
	log "starting Redis on 127.0.0.1:$redis_port (AOF in $(short "$data/redis"))…"
	redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
		--dir "$data/redis" --appendonly yes --appendfsync everysec --save "" \
		--maxmemory-policy noeviction \
		--pidfile "$data/redis/redis.pid" --logfile "$data/redis/redis.log"
	started_redis=1
	wait_until 100 redis_up "$redis_port" ||
		die "Redis did not answer on 127.0.0.1:$redis_port (see $(short "$data/redis/redis.log"))"
}

# port_taken PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_taken() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# mailpit_up: Mailpit's API answers.
mailpit_up() {
	curl -fsS -o /dev/null "http://127.0.0.1:$mailpit_http_port/api/v1/messages"
}

# build_smtp_sink builds Mailpit into ./.tools/bin unless MAILGATE_RELAYS is
# set (then no Mailpit is needed).
build_smtp_sink() {
	[[ -z ${MAILGATE_RELAYS:-} ]] || return 0
	bash scripts/tools.sh mailpit
}

# start_smtp_sink starts Mailpit on loopback (SMTP without TLS or AUTH, API
# on HTTP), keeping its messages in ./data/mailpit, and points
# MAILGATE_RELAYS at it. A MAILGATE_RELAYS set by the user is used instead.
start_smtp_sink() {
	if [[ -n ${MAILGATE_RELAYS:-} ]]; then
		log "Mailpit: not started (MAILGATE_RELAYS is set: using it)"
		return 0
	fi
	local port
	for port in "$mailpit_smtp_port" "$mailpit_http_port"; do
		! port_taken "$port" ||
			die "127.0.0.1:$port is in use: stop what listens there, or set MAILGATE_RUN_MAILPIT_SMTP_PORT and MAILGATE_RUN_MAILPIT_HTTP_PORT"
	done
	mkdir -p "$data/mailpit"
	log "starting Mailpit: SMTP on 127.0.0.1:$mailpit_smtp_port, API on http://127.0.0.1:$mailpit_http_port (log in $(short "$data/mailpit/mailpit.log"))…"
	.tools/bin/mailpit --disable-version-check --smtp-disable-rdns \
		--smtp "127.0.0.1:$mailpit_smtp_port" --listen "127.0.0.1:$mailpit_http_port" \
		--database "$data/mailpit/mailpit.db" --log-file "$data/mailpit/mailpit.log" \
		>>"$data/mailpit/mailpit.log" 2>&1 &
	mailpit_pid=$!
	wait_until 100 mailpit_up ||
		die "Mailpit did not answer on 127.0.0.1:$mailpit_http_port (see $(short "$data/mailpit/mailpit.log"))"
	export MAILGATE_RELAYS="smtp://127.0.0.1:$mailpit_smtp_port?tls=none"
}

# valid_master_keys KEYS: KEYS is a comma-separated list of standard base64
# encodings of 32 bytes.
valid_master_keys() {
	local k
	local -a keys
	IFS=, read -ra keys <<<"$1"
	((${#keys[@]})) || return 1
	for k in "${keys[@]}"; do
		[[ $(printf '%s' "$k" | base64 -d 2>/dev/null | wc -c) -eq 32 ]] || return 1
	done
}

# ensure_master_key exports MAILGATE_MASTER_KEY: the user's, else the one a
# previous run kept in ./data/env, else a new one (32 random bytes, standard
# base64), which write_env then keeps. A kept key that does not parse stops
# the run rather than being replaced (the DKIM keys it sealed would be lost).
ensure_master_key() {
	if [[ -n ${MAILGATE_MASTER_KEY:-} ]]; then
		return 0
	fi
	local key= env
	env=$(short "$data/env")
	if [[ -f $data/env ]]; then
		key=$(sed -n 's/^export MAILGATE_MASTER_KEY=//p' "$data/env" | tail -n 1 | tr -d "\"'\\\\")
	fi
	if [[ -n $key ]]; then
		valid_master_keys "$key" ||
			die "$env holds a MAILGATE_MASTER_KEY that is not base64 of 32 bytes: fix that line (or remove it and lose the DKIM keys sealed with it)"
		log "MAILGATE_MASTER_KEY: the one kept in $env"
	else
		log "MAILGATE_MASTER_KEY: generating one, kept in $env (DKIM keys sealed with it survive restarts)"
		key=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
	fi
	export MAILGATE_MASTER_KEY=$key
}

# absolute_database_url URL prints URL with a relative sqlite:PATH made
# absolute from the working directory (the repository root under main), so
# that ./data/env names the same file wherever it is sourced. Other URLs are
# printed as they are.
absolute_database_url() {
	local url=$1 path
	if [[ $url != sqlite:* ]]; then
		printf '%s\n' "$url"
		return
	fi
	path=${url#sqlite:}
	path=${path#//}
	[[ $path == /* ]] || path=$PWD/${path#./}
	printf 'sqlite:%s\n' "$path"
}

# set_defaults exports the settings of the gateway: the user's where set,
# else those of a local run. The private Redis' URL is set by main.
set_defaults() {
	MAILGATE_DATABASE_URL=$(absolute_database_url "${MAILGATE_DATABASE_URL:-sqlite:$data/mailgate.db}")
	export MAILGATE_DATABASE_URL
	export MAILGATE_LISTEN=${MAILGATE_LISTEN:-127.0.0.1:8080}
	export MAILGATE_ALLOWED_SENDER_DOMAINS=${MAILGATE_ALLOWED_SENDER_DOMAINS:-example.com}
	export MAILGATE_RETURN_PATH_DOMAIN=${MAILGATE_RETURN_PATH_DOMAIN:-bounces.example.com}
	export MAILGATE_DNS_SERVER=${MAILGATE_DNS_SERVER:-127.0.0.1:53}
}

# write_env records the gateway's environment in ./data/env.
write_env() {
	mkdir -p "$data"
	# umask 077: the file holds the master key, readable by its owner alone
	# from the moment it exists.
	(
		umask 077
		{
			echo "# Written by scripts/run.sh: the environment of the gateway 'make run' started."
			echo "# Use it with: source $data/env"
			local name
			for name in MAILGATE_DATABASE_URL MAILGATE_REDIS_URL MAILGATE_LISTEN MAILGATE_ALLOWED_SENDER_DOMAINS \
				MAILGATE_RELAYS MAILGATE_RETURN_PATH_DOMAIN MAILGATE_DNS_SERVER MAILGATE_MASTER_KEY; do
				printf 'export %s=%q\n' "$name" "${!name:-}"
			done
		} >"$data/env.tmp"
	)
	chmod 600 "$data/env.tmp" # an env.tmp left by an earlier run kept its mode
	mv "$data/env.tmp" "$data/env"
}

# print_first_steps shows how to create a key, send the first message and
# see it.
print_first_steps() {
	local base="http://$MAILGATE_LISTEN"
	cat <<EOF

mailgate serve is starting on $base (Ctrl-C stops it).
In another terminal, create an API key and send your first message:

  cd $(printf %q "$MG_ROOT") && source $(printf %q "$(short "$data/env")")
  KEY=\$(./bin/mailgate keys create --name first --scope messages:send --scope messages:read --scope domains)
  curl -sS -X POST $base/v1/messages \\
    -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
    -d '{"from": "Shop <orders@example.com>", "to": ["ann@example.org"],
         "subject": "Hello from mailgate", "text": "My first message."}'

  # the answer is 202 {"id": "ID", "status": "queued", ...}; then read its
  # status, each recipient's SMTP answer and the events:
  curl -sS -H "Authorization: Bearer \$KEY" $base/v1/messages/ID

EOF
	if [[ -n $mailpit_pid ]]; then
		local mp="http://127.0.0.1:$mailpit_http_port"
		cat <<EOF
Sent mail lands in Mailpit ($MAILGATE_RELAYS). Read it through Mailpit's
API (this Mailpit has no web UI):

  curl -s $mp/api/v1/messages | python3 -m json.tool   # ID, From, To, Subject of each
  curl -s $mp/api/v1/message/MAILPIT_ID/raw            # one message as it arrived, DKIM-Signature included

EOF
	fi
	echo "Next: docs/walkthrough.md (a sender domain, DKIM keys, a signed message)."
	echo
}

# on_signal stops mailgate: Ctrl-C's SIGINT reached it too (Go re-enables the
# SIGINT that bash ignores for background jobs when mailgate asks for it), so
# give it 2 s to shut down on its own before stop_process sends SIGTERM.
# A stop asked for is a normal end: exit 0.
on_signal() {
	if [[ -n $mailgate_pid ]]; then
		wait_until 20 process_gone "$mailgate_pid" || true
		stop_process "$mailgate_pid"
		mailgate_pid=
	fi
	log "mailgate stopped"
	exit 0
}

# cleanup stops what this script started.
cleanup() {
	stop_process "$mailgate_pid"
	if [[ -n $mailpit_pid ]]; then
		log "Mailpit: stopping (its messages stay in $(short "$data/mailpit"))"
		stop_process "$mailpit_pid"
		mailpit_pid=
	fi
	if [[ $started_redis == 1 && ${MAILGATE_RUN_KEEP_REDIS:-0} != 1 ]]; then
		log "Redis: stopping the private Redis on $redis_port (its AOF stays in $(short "$data/redis"))"
		redis-cli -h 127.0.0.1 -p "$redis_port" shutdown >/dev/null 2>&1 || true
	fi
}

main() {
	cd "$MG_ROOT"
	mkdir -p "$data" bin
	# The noisy output of apt-get, go install and go build goes to
	# setup.log (lib.sh's quietly); the terminal gets one line per step.
	export MG_LOG_FILE=$data/setup.log
	: >"$MG_LOG_FILE"
	if first_run; then
		log "first run: installing what is missing and building Mailpit and mailgate can take a few minutes (details in $(short "$MG_LOG_FILE"))"
	fi
	require_go
	install_for_commands redis-server:redis-server redis-cli:redis-tools
	use_openssl
	build_smtp_sink
	log "building mailgate (./bin/mailgate)…"
	quietly go build -o ./bin/mailgate ./cmd/mailgate || die "go build ./cmd/mailgate failed"

	trap cleanup EXIT
	trap on_signal INT TERM
	if [[ -z ${MAILGATE_REDIS_URL:-} ]]; then
		start_private_redis
		export MAILGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	fi
	set_defaults
	ensure_master_key
	start_smtp_sink
	write_env
	print_first_steps
	./bin/mailgate serve &
	mailgate_pid=$!
	local rc=0
	wait "$mailgate_pid" || rc=$?
	mailgate_pid=
	exit "$rc"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	set -euo pipefail
	main "$@"
fi
