#!/usr/bin/python3
"""Verify every DKIM-Signature of messages with python3-dkim, offline.

Usage: dkimverify.py KEYS.json [MESSAGE.eml ...]   (no files: stdin)

KEYS.json maps a DNS name ("sel._domainkey.example.com") to its TXT record
value; no DNS query is made. Prints one JSON line per message: a list with
one boolean per signature, in header order. Exit status: 0 when every
message has signatures and all verify, 1 when one does not, 2 on usage
errors, 3 when python3-dkim or python3-nacl (Ed25519) is missing.
"""
import json
import sys

try:
    import dkim
    import nacl.signing  # noqa: F401  (python3-dkim needs it for Ed25519)
except ImportError as e:
    print("missing module: %s" % e, file=sys.stderr)
    sys.exit(3)


def verify(msg, dnsfunc):
    """One boolean per DKIM-Signature of msg."""
    headers = dkim.DKIM(msg).headers
    count = sum(1 for name, _ in headers if name.lower() == b"dkim-signature")
    results = []
    for i in range(count):
        try:
            results.append(bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc)))
        except dkim.DKIMException as e:
            print("signature %d: %s" % (i, e), file=sys.stderr)
            results.append(False)
    return results


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        key = name.decode() if isinstance(name, bytes) else name
        value = records.get(key.rstrip("."))
        return value.encode() if value is not None else None

    messages = []
    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            messages.append(f.read())
    if not messages:
        messages.append(sys.stdin.buffer.read())
    ok = True
    for msg in messages:
        results = verify(msg, dnsfunc)
        print(json.dumps(results))
        ok = ok and bool(results) and all(results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
