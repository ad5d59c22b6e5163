#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions run from traps
# run.sh: `make run`, a working single-node gateway on this machine.
#
# Installs redis-server when missing, starts a private Redis with AOF
# persistence under ./data/redis on 127.0.0.1:${MAILGATE_RUN_REDIS_PORT:-6390}
# (a Redis already on 6379 is left alone), builds ./bin/mailgate and runs
# `mailgate serve` in the foreground on SQLite (./data/mailgate.db), listening
# on 127.0.0.1:8080. The environment it uses is written to ./data/env so a
# second terminal can `source ./data/env` and run mailgate commands.
#
# Ctrl-C stops mailgate, then the private Redis if this script started it
# (MAILGATE_RUN_KEEP_REDIS=1 leaves it running). A Redis that already answered
# on the port is used and left alone. MAILGATE_DATABASE_URL, MAILGATE_REDIS_URL
# (then no private Redis is started), MAILGATE_LISTEN and
# MAILGATE_ALLOWED_SENDER_DOMAINS set by the user win over the defaults.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$MG_ROOT"
require_go

redis_port=${MAILGATE_RUN_REDIS_PORT:-6390}
started_redis=0
mailgate_pid=

# start_private_redis: Redis for the gateway, durable (AOF, fsync every
# second), never evicting queued work, on loopback only.
start_private_redis() {
	mkdir -p data/redis
	if redis_up "$redis_port"; then
		log "Redis: already answering on 127.0.0.1:$redis_port; using it"
		return 0
	fi
	log "Redis: starting a private one on 127.0.0.1:$redis_port (AOF in ./data/redis)"
	redis-server --port "$redis_port" --bind 127.0.0.1 --daemonize yes \
		--dir "$MG_ROOT/data/redis" --appendonly yes --appendfsync everysec --save "" \
		--maxmemory-policy noeviction \
		--pidfile "$MG_ROOT/data/redis/redis.pid" --logfile "$MG_ROOT/data/redis/redis.log"
	started_redis=1
	wait_until 100 redis_up "$redis_port" ||
		die "Redis did not answer on 127.0.0.1:$redis_port (see ./data/redis/redis.log)"
}

# start_smtp_sink: HOOK for a later step. It will start a local SMTP sink
# (Mailpit) on loopback and export MAILGATE_RELAYS pointing at it, so that
# `make run` delivers somewhere visible. Not wired yet: messages stay queued
# or deferred until a relay is configured.
start_smtp_sink() {
	: # HOOK(mailpit): start Mailpit here and export MAILGATE_RELAYS.
}

# write_env records the gateway's environment in ./data/env.
write_env() {
	{
		echo "# Written by scripts/run.sh: the environment of the gateway 'make run' started."
		echo "# Use it with: source ./data/env"
		local name
		for name in MAILGATE_DATABASE_URL MAILGATE_REDIS_URL MAILGATE_LISTEN MAILGATE_ALLOWED_SENDER_DOMAINS; do
			printf 'export %s=%q\n' "$name" "${!name}"
		done
	} >data/env
}

# print_first_steps shows how to create a key and send the first message.
print_first_steps() {
	local base="http://$MAILGATE_LISTEN"
	cat <<EOF

mailgate serve is starting on $base (Ctrl-C stops it).
In another terminal, create an API key and send your first message:

  cd $MG_ROOT && source ./data/env
  KEY=\$(./bin/mailgate keys create --name first --scope messages:send --scope messages:read)
  curl -sS -X POST $base/v1/messages \\
    -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
    -d '{"from": "Shop <orders@example.com>", "to": ["ann@example.org"],
         "subject": "Hello from mailgate", "text": "My first message."}'

  # the answer is 202 {"id": "ID", "status": "queued", ...}; then read its status:
  curl -sS -H "Authorization: Bearer \$KEY" $base/v1/messages/ID

EOF
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
	if [[ $started_redis == 1 && ${MAILGATE_RUN_KEEP_REDIS:-0} != 1 ]]; then
		log "Redis: stopping the private Redis on $redis_port (its AOF stays in ./data/redis)"
		redis-cli -h 127.0.0.1 -p "$redis_port" shutdown >/dev/null 2>&1 || true
	fi
}

main() {
	install_for_commands redis-server:redis-server redis-cli:redis-tools
	mkdir -p data bin
	trap cleanup EXIT
	trap on_signal INT TERM
	if [[ -z ${MAILGATE_REDIS_URL:-} ]]; then
		start_private_redis
		export MAILGATE_REDIS_URL="redis://127.0.0.1:$redis_port/0"
	fi
	export MAILGATE_DATABASE_URL=${MAILGATE_DATABASE_URL:-sqlite:./data/mailgate.db}
	export MAILGATE_LISTEN=${MAILGATE_LISTEN:-127.0.0.1:8080}
	export MAILGATE_ALLOWED_SENDER_DOMAINS=${MAILGATE_ALLOWED_SENDER_DOMAINS:-example.com}
	start_smtp_sink

	log "go build -o ./bin/mailgate ./cmd/mailgate"
	go build -o ./bin/mailgate ./cmd/mailgate
	write_env
	print_first_steps
	./bin/mailgate serve &
	mailgate_pid=$!
	local rc=0
	wait "$mailgate_pid" || rc=$?
	mailgate_pid=
	exit "$rc"
}

main "$@"
