// Package e2e holds mailgate's end-to-end tests: they build the real
// `mailgate` binary once, start it as separate processes (serve, api,
// worker) against a real Redis, a fresh SQLite or PostgreSQL database and
// an in-process SMTP sink on 127.0.0.1, drive it over HTTP like a client
// would, and check what arrives at the sink (DKIM signatures verified by
// Debian's python3-dkim), including a worker killed with SIGKILL in the
// middle of a batch, rate limits shared by two worker processes, and the
// send path through a Redis Sentinel setup (its primary killed mid-run)
// and a Redis Cluster that the tests start on loopback ports. It
// owns no production code; the tests talk to loopback only.
package e2e
