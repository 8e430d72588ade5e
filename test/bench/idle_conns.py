#!/usr/bin/env python3
"""Hold N idle HTTP/1.1 keep-alive client connections open against a server.

Used by test/bench/run.sh to measure a proxy's memory with many idle clients.

Each connection sends one `GET /` and reads the whole response (Content-Length
or chunked), then stays open and idle. At most --concurrency requests are in
flight at once. When every connection is done, a JSON summary is written
atomically to --ready-file. The connections are then held until SIGUSR1,
SIGTERM or SIGINT arrives, or --hold-max seconds pass; on exit the script checks
how many are still open (the peer has not closed them), writes that to
--result-file, closes everything and exits (status 0 if all connections got a
200 and were still open at the end, 1 otherwise).
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import sys


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
        f.write("\n")
    os.replace(tmp, path)


async def read_response(reader):
    """Read one HTTP/1.1 response; return (status, keep_alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError("bad status line: %r" % lines[0])
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = "close" not in headers.get("connection", "").lower()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                # trailers, if any, end with an empty line
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            await reader.readexactly(size + 2)
    elif "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif status not in (204, 304) and not (100 <= status < 200):
        raise ValueError("response without length on a keep-alive connection")
    return status, keep_alive


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--path", default="/")
    ap.add_argument("--timeout", type=float, default=10.0, help="per connection setup + request")
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--result-file", required=True)
    ap.add_argument("--hold-max", type=float, default=120.0)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))

    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: meshbox-bench-idle\r\n\r\n"
               % (args.path, args.host, args.port)).encode()
    sem = asyncio.Semaphore(args.concurrency)
    conns = []  # (reader, writer)
    errors = {}

    def note(kind):
        errors[kind] = errors.get(kind, 0) + 1

    async def one():
        async with sem:
            writer = None
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(args.host, args.port), args.timeout)
                writer.write(request)
                status, keep_alive = await asyncio.wait_for(read_response(reader), args.timeout)
            except Exception as e:  # noqa: BLE001 - every failure is counted, none is fatal
                note(type(e).__name__)
                if writer is not None:
                    writer.close()
                return
            if status != 200:
                note("status_%d" % status)
                writer.close()
                return
            if not keep_alive:
                note("connection_close")
                writer.close()
                return
            conns.append((reader, writer))

    await asyncio.gather(*(one() for _ in range(args.conns)))
    write_json(args.ready_file, {"requested": args.conns, "ok": len(conns), "errors": errors})

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), args.hold_max)
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True

    # Let the loop deliver any pending EOFs before looking.
    await asyncio.sleep(0)
    alive = sum(1 for r, w in conns if not r.at_eof() and not w.is_closing())
    write_json(args.result_file, {"requested": args.conns, "ok": len(conns), "alive": alive,
                                  "errors": errors, "hold_timed_out": timed_out})
    for _, w in conns:
        w.close()
    for _, w in conns:
        try:
            await w.wait_closed()
        except Exception:  # noqa: BLE001
            pass
    return 0 if (alive == args.conns and not errors) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
