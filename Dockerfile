# syntax=docker/dockerfile:1
#
# mailgate's container image: one static, pure-Go binary on distroless
# static (no shell, no libc, no libcrypto), run as the unprivileged user
# nonroot (uid 65532).
#
#   docker build -t mailgate --build-arg VERSION=$(git describe --always) .
#
# The binary is built by scripts/build-static.sh, the same script `make test`
# runs and checks (deploy/image_test.go), so the image cannot drift from the
# tested build. DKIM's RSA signatures then use Go's crypto/rsa: the
# "openssl" build of `make run` needs libcrypto, which this image lacks.
#
# No HEALTHCHECK: orchestrators probe GET /healthz and /readyz themselves
# (deploy/compose.yaml, deploy/k8s/). The command picks the role: serve
# (default), api, worker, poller, migrate up.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN VERSION="${VERSION}" bash scripts/build-static.sh /out/mailgate \
	&& mkdir -p /out/var/lib/mailgate/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="mailgate" \
	org.opencontainers.image.description="HTTP-to-SMTP transactional email gateway" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.revision="${REVISION}" \
	org.opencontainers.image.created="${CREATED}" \
	org.opencontainers.image.licenses="MIT" \
	org.opencontainers.image.source="https://github.com/mailgate/mailgate" \
	org.opencontainers.image.documentation="https://github.com/mailgate/mailgate#deploying"
COPY --from=build /out/mailgate /usr/local/bin/mailgate
# serve's default SQLite database (sqlite:./data/mailgate.db) lands in
# /var/lib/mailgate/data, writable by nonroot; the other roles use PostgreSQL.
COPY --from=build --chown=65532:65532 /out/var/lib/mailgate /var/lib/mailgate
WORKDIR /var/lib/mailgate
USER 65532:65532
# The API (serve, api) and the health and metrics port of worker and poller,
# on every interface: the binary's defaults are loopback only.
ENV MAILGATE_LISTEN=:8080 \
	MAILGATE_METRICS_LISTEN=:9464 \
	MAILGATE_LOG_FORMAT=json
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/mailgate"]
CMD ["serve"]
