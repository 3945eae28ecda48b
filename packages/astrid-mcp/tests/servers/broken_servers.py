"""Servers that fail in the ways real ones do. Usage: python broken_servers.py MODE

exit      exits at start with a message on stderr
garbage   prints non-JSON lines on stdout and never answers
silent    reads stdin forever and never answers initialize
badresult answers initialize with a result that does not fit the schema
"""

from __future__ import annotations

import json
import sys
import time

mode = sys.argv[1]
if mode == "exit":
    print("fatal: missing configuration file /nowhere/config.json", file=sys.stderr)
    sys.exit(2)
if mode == "garbage":
    for n in range(3):
        print(f"hello from a server that logs to stdout #{n}", flush=True)
    time.sleep(60)
if mode == "silent":
    for _line in sys.stdin:
        pass
    time.sleep(60)
if mode == "badresult":
    for line in sys.stdin:
        request = json.loads(line)
        if "id" in request:
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": {"protocolVersion": 42}}
            print(json.dumps(reply), flush=True)
