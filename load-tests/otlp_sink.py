#!/usr/bin/env python3
"""A minimal OTLP/HTTP traces receiver for load tests: accepts POST /v1/traces (protobuf),
counts requests, bytes and spans (by walking the protobuf wire format, no library needed),
and writes the counts as JSON to the given file on SIGTERM.

    otlp_sink.py PORT OUT.json
"""
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"requests": 0, "bytes": 0, "spans": 0}


def fields(buf):
    """(field number, wire type, value) of one protobuf message; length-delimited values as bytes."""
    i, n = 0, len(buf)
    while i < n:
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = varint(buf, i)
        elif wire == 1:
            value, i = buf[i:i + 8], i + 8
        elif wire == 2:
            length, i = varint(buf, i)
            value, i = buf[i:i + length], i + length
        elif wire == 5:
            value, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wire}")
        yield number, wire, value


def varint(buf, i):
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def span_count(body):
    # ExportTraceServiceRequest.resource_spans(1) -> ResourceSpans.scope_spans(2) -> ScopeSpans.spans(2)
    total = 0
    for n1, w1, resource_spans in fields(body):
        if n1 == 1 and w1 == 2:
            for n2, w2, scope_spans in fields(resource_spans):
                if n2 == 2 and w2 == 2:
                    total += sum(1 for n3, w3, _ in fields(scope_spans) if n3 == 2 and w3 == 2)
    return total


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        counts["requests"] += 1
        counts["bytes"] += len(body)
        counts["spans"] += span_count(body)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    port, out = int(sys.argv[1]), sys.argv[2]

    def stop(*_):
        with open(out, "w") as f:
            json.dump(counts, f)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
