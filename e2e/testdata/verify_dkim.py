#!/usr/bin/python3
"""Verify every DKIM-Signature of one message with python3-dkim.

Usage: verify_dkim.py MESSAGE_FILE RECORDS_JSON

RECORDS_JSON maps fully qualified TXT names (no trailing dot) to record
values, as mailgate's dns_records give them; no real DNS is queried.
Prints one JSON array: [{"d": ..., "s": ..., "a": ..., "ok": bool}, ...]
in the order of the signatures in the header. Exit 2 when python3-dkim is
missing, 1 on bad usage.
"""
import json
import sys

try:
    import dkim
except ImportError as exc:  # the Go test turns this into testsvc.Missing
    print("python3-dkim missing: %s" % exc, file=sys.stderr)
    sys.exit(2)


def tags(value):
    out = {}
    for part in value.decode("ascii", "replace").split(";"):
        key, _, val = part.partition("=")
        out[key.strip()] = "".join(val.split())
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 1
    with open(sys.argv[1], "rb") as f:
        msg = f.read()
    with open(sys.argv[2], "rb") as f:
        records = json.load(f)

    def dnsfunc(name, timeout=5):
        key = name.decode("ascii") if isinstance(name, bytes) else name
        value = records.get(key.rstrip(".").lower())
        return value.encode("ascii") if value is not None else None

    sigs = [v for k, v in dkim.DKIM(msg).headers if k.lower() == b"dkim-signature"]
    results = []
    for i, sig in enumerate(sigs):
        t = tags(sig)
        ok = bool(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc))
        results.append({"d": t.get("d"), "s": t.get("s"), "a": t.get("a"), "ok": ok})
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
