#!/usr/bin/env python3
"""Soak test helper (benches/soak.sh, issue 30): a fake provider and a steady mixed load.

  provider PORT_FILE          an OpenAI Chat + Anthropic Messages provider on a free port
                              (written to PORT_FILE): JSON or SSE as the request asks; with
                              `"user": "reset"` / `metadata.user_id: "reset"` in the request it
                              resets the connection (RST) in the middle of its answer.
  load URL PID SECONDS RATE OUT_TSV
                              RATE requests/s, open loop (at most MAX_INFLIGHT open at
                              once; past that it waits, `held_back`), for SECONDS: the four client
                              protocols (Anthropic, Chat, Responses, Gemini) on two adapters
                              (Chat and Anthropic sources), half of them streamed; 1 % of the
                              clients leave in the middle of the answer, 1 % of the requests
                              ask the provider to reset. Every 10 s a line to OUT_TSV: time,
                              requests, failures, p50/p99 latency (ms) of that window, and
                              PID's RSS (kB) and open descriptors.
  report OUT_TSV              the markdown summary (RSS growth after minute 5, fds, p99).

Stdlib only. A failure is an answer the client should not have got: a non-2xx status or a
broken body on a request that neither left early nor asked for a reset.
"""
import asyncio
import json
import os
import random
import socket
import struct
import sys
import time

# --------------------------------------------------------------------------------------------
# The provider

WORDS = "the proxy reads every event and writes it to the client".split()


def chat_json():
    return {
        "id": "chatcmpl-soak", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello from the soak provider."}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
    }


def chat_events(n):
    base = {"id": "chatcmpl-soak", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    out = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
    for i in range(n):
        out.append(dict(base, choices=[{"index": 0, "delta": {"content": WORDS[i % len(WORDS)] + " "}}]))
    out.append(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    out.append(dict(base, choices=[], usage={"prompt_tokens": 12, "completion_tokens": n, "total_tokens": 12 + n}))
    return [f"data: {json.dumps(e)}\n\n".encode() for e in out] + [b"data: [DONE]\n\n"]


def anthropic_json():
    return {
        "id": "msg_soak", "type": "message", "role": "assistant", "model": "m",
        "content": [{"type": "text", "text": "Hello from the soak provider."}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 12, "output_tokens": 6},
    }


def anthropic_events(n):
    def ev(name, data):
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
    out = [ev("message_start", {"type": "message_start", "message": {
        "id": "msg_soak", "type": "message", "role": "assistant", "model": "m", "content": [],
        "stop_reason": None, "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ev("content_block_start", {"type": "content_block_start", "index": 0,
                                   "content_block": {"type": "text", "text": ""}})]
    for i in range(n):
        out.append(ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": WORDS[i % len(WORDS)] + " "}}))
    out.append(ev("content_block_stop", {"type": "content_block_stop", "index": 0}))
    out.append(ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                    "usage": {"output_tokens": n}}))
    out.append(ev("message_stop", {"type": "message_stop"}))
    return out


EVENTS = 40
# Requests open at once at the most (the client's descriptors, and a bound on queueing).
MAX_INFLIGHT = 256
ANSWERS = {
    ("chat", False): [json.dumps(chat_json()).encode()],
    ("chat", True): chat_events(EVENTS),
    ("anthropic", False): [json.dumps(anthropic_json()).encode()],
    ("anthropic", True): anthropic_events(EVENTS),
}


def reset(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def read_message(reader):
    """The first line, headers (lower-cased names) and body of one HTTP/1.1 message
    (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    body = b""
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).strip().split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            body += await reader.readexactly(size)
            await reader.readline()
    return lines[0], headers, body


async def serve_provider(reader, writer):
    try:
        while True:
            try:
                first, _, body = await read_message(reader)
                path = first.split(" ")[1]
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            req = json.loads(body or b"{}")
            kind = "anthropic" if path.endswith("/messages") else "chat"
            stream = bool(req.get("stream"))
            who = req.get("user") or (req.get("metadata") or {}).get("user_id") or ""
            parts = ANSWERS[(kind, stream)]
            ctype = "text/event-stream" if stream else "application/json"
            if stream:
                writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ntransfer-encoding: chunked\r\n\r\n".encode())
                for i, part in enumerate(parts):
                    if "reset" in who and i == len(parts) // 2:
                        await writer.drain()
                        reset(writer)
                        return
                    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    if i % 8 == 0:
                        await writer.drain()
                        await asyncio.sleep(0.002)
                writer.write(b"0\r\n\r\n")
            else:
                if "reset" in who:
                    writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {len(parts[0])}\r\n\r\n".encode())
                    writer.write(parts[0][: len(parts[0]) // 2])
                    await writer.drain()
                    reset(writer)
                    return
                writer.write(f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {len(parts[0])}\r\n\r\n".encode() + parts[0])
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def provider_main(port_file):
    server = await asyncio.start_server(serve_provider, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    with open(port_file + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(port_file + ".tmp", port_file)
    async with server:
        await server.serve_forever()


# --------------------------------------------------------------------------------------------
# The load

def request_for(protocol, adapter, stream, reset_it):
    """(path, headers, body) of one client request."""
    key = f"fp-soak-{adapter}"
    user = "reset" if reset_it else "soak"
    text = "Say hello. " * 20
    if protocol == "anthropic":
        body = {"model": "claude-soak", "max_tokens": 256, "stream": stream,
                "metadata": {"user_id": user},
                "messages": [{"role": "user", "content": text}]}
        return "/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, body
    if protocol == "chat":
        body = {"model": "gpt-soak", "stream": stream, "user": user,
                "messages": [{"role": "user", "content": text}]}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return "/v1/chat/completions", {"authorization": f"Bearer {key}"}, body
    if protocol == "responses":
        body = {"model": "gpt-soak", "stream": stream, "user": user, "input": text}
        return "/v1/responses", {"authorization": f"Bearer {key}"}, body
    # Gemini: the model and whether to stream are in the path; no user field, so a reset
    # is asked for through the prompt's first word (the provider sees the translated
    # request, whose `user` the Gemini codec leaves unset: resets go through the others).
    path = "/v1beta/models/gemini-soak:" + ("streamGenerateContent?alt=sse" if stream else "generateContent")
    body = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    return path, {"x-goog-api-key": key}, body


class Stats:
    def __init__(self):
        self.latencies = []
        self.requests = 0
        self.failures = 0
        self.left = 0
        self.resets = 0
        self.resets_seen = 0  # reset requests whose answer the client saw broken off
        self.held_back = 0  # times a request waited because MAX_INFLIGHT were open
        self.examples = []


def complete(protocol, stream, body):
    """Whether an answer is whole: a stream's last event, a JSON body that parses."""
    if not stream:
        try:
            json.loads(body)
            return True
        except ValueError:
            return False
    text = body.decode("utf-8", "replace")
    return {
        "anthropic": "message_stop" in text,
        "chat": "[DONE]" in text,
        "responses": "response.completed" in text,
        "gemini": "finishReason" in text,
    }[protocol]


async def one(host, port, stats, rng):
    protocol = rng.choice(["anthropic", "chat", "responses", "gemini"])
    adapter = rng.choice(["chat", "anthropic"])
    stream = rng.random() < 0.5
    leave = rng.random() < 0.01
    reset_it = protocol != "gemini" and rng.random() < 0.0133  # 1 % of all requests
    path, headers, body = request_for(protocol, adapter, stream, reset_it)
    data = json.dumps(body).encode()
    head = f"POST {path} HTTP/1.1\r\nhost: soak\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "connection: close\r\n\r\n"
    t0 = time.monotonic()
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head.encode() + data)
        await writer.drain()
        if leave:
            await reader.read(rng.randint(1, 400))
            stats.left += 1
            reset(writer)
            return
        first, _, answer = await asyncio.wait_for(read_message(reader), 30)
        status = int(first.split(" ")[1])
        ok = 200 <= status < 300 and complete(protocol, stream, answer)
        if reset_it:
            stats.resets += 1
            stats.resets_seen += not ok
        elif not ok:
            stats.failures += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{protocol} {adapter} stream={stream}: {status} {answer[:200]!r}")
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError) as e:
        if reset_it:
            stats.resets += 1
            stats.resets_seen += 1
        else:
            stats.failures += 1
            if len(stats.examples) < 5:
                stats.examples.append(f"{protocol} {adapter} stream={stream}: {type(e).__name__} {e}")
    finally:
        stats.requests += 1
        stats.latencies.append((time.monotonic() - t0) * 1000)
        if writer is not None:
            writer.close()


def proc_sample(pid):
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds


def pct(xs, p):
    if not xs:
        return 0.0
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


async def load_main(url, pid, seconds, rate, out_tsv):
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    port = int(port)
    rng = random.Random(30)
    stats = Stats()
    tasks = set()
    start = time.monotonic()
    window_start, window_requests, window_failures = start, 0, 0
    with open(out_tsv, "w") as out:
        out.write("t_s\trequests\tfailures\tleft\tresets\tp50_ms\tp99_ms\trss_kb\tfds\tinflight\n")
        n = 0
        while True:
            now = time.monotonic()
            if now - start >= seconds:
                break
            # Open loop: the n-th request starts at n / rate, whatever the answers do.
            due = start + n / rate
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            # A machine that cannot keep up must not drown in queued requests: past
            # MAX_INFLIGHT the load waits (counted as `held back`) instead of opening more.
            if len(tasks) >= MAX_INFLIGHT:
                stats.held_back += 1
                await asyncio.sleep(0.005)
                continue
            n += 1
            t = asyncio.create_task(one(host, port, stats, rng))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            if now - window_start >= 10:
                lat, stats.latencies = stats.latencies, []
                rss, fds = proc_sample(pid)
                out.write(f"{now - start:.0f}\t{stats.requests - window_requests}\t"
                          f"{stats.failures - window_failures}\t{stats.left}\t{stats.resets}\t"
                          f"{pct(lat, 50):.2f}\t{pct(lat, 99):.2f}\t{rss}\t{fds}\t{len(tasks)}\n")
                out.flush()
                window_start, window_requests, window_failures = now, stats.requests, stats.failures
        if tasks:
            await asyncio.wait(tasks, timeout=40)
    await asyncio.sleep(2)
    rss, fds = proc_sample(pid)
    print(f"requests={stats.requests} failures={stats.failures} left={stats.left} resets={stats.resets} "
          f"resets_seen_by_client={stats.resets_seen} held_back={stats.held_back} "
          f"rss_kb_after={rss} fds_after={fds}")
    for e in stats.examples:
        print(f"failure example: {e}")
    return 1 if stats.failures else 0


def report(tsv):
    rows = []
    with open(tsv) as f:
        next(f)
        for line in f:
            t, req, fail, left, resets, p50, p99, rss, fds, inflight = line.split("\t")
            rows.append((float(t), int(req), int(fail), int(left), int(resets), float(p50),
                         float(p99), int(rss), int(fds), int(inflight)))
    if not rows:
        print("no samples")
        return
    after5 = [r for r in rows if r[0] >= 300] or rows[len(rows) // 2:]
    base, last = after5[0], rows[-1]
    growth = (last[7] - base[7]) / base[7] * 100
    duration = rows[-1][0]
    total = sum(r[1] for r in rows)
    print(f"| measured | value |\n|---|---|")
    print(f"| duration | {duration / 60:.1f} min, {total:,} requests ({total / duration:.0f}/s) |")
    print(f"| failures (not a planned disconnect or reset) | {sum(r[2] for r in rows)} |")
    print(f"| clients that left mid-answer / provider resets | {last[3]} / {last[4]} |")
    print(f"| RSS at t={base[0]:.0f} s → end | {base[7] / 1024:.1f} → {last[7] / 1024:.1f} MB ({growth:+.1f} %) |")
    print(f"| RSS min / max after t={base[0]:.0f} s | {min(r[7] for r in after5) / 1024:.1f} / {max(r[7] for r in after5) / 1024:.1f} MB |")
    print(f"| open fds: first sample / after t={base[0]:.0f} s / end (min–max) | {rows[0][8]} / {base[8]} / {last[8]} ({min(r[8] for r in rows)}–{max(r[8] for r in rows)}) |")
    print()
    print("p50 / p99 (ms) and RSS per minute (the 10-second windows of that minute: median p50, max p99):")
    print()
    print("| minute | requests | p50 ms | p99 ms | RSS MB | fds |\n|---:|---:|---:|---:|---:|---:|")
    minutes = {}
    for r in rows:
        minutes.setdefault(int((r[0] - 1) // 60), []).append(r)
    for m, rs in sorted(minutes.items()):
        p50 = sorted(r[5] for r in rs)[len(rs) // 2]
        print(f"| {m + 1} | {sum(r[1] for r in rs):,} | {p50:.1f} | {max(r[6] for r in rs):.1f} | "
              f"{rs[-1][7] / 1024:.1f} | {rs[-1][8]} |")


def main(argv):
    cmd = argv[1]
    if cmd == "provider":
        asyncio.run(provider_main(argv[2]))
    elif cmd == "load":
        sys.exit(asyncio.run(load_main(argv[2], int(argv[3]), float(argv[4]), float(argv[5]), argv[6])))
    elif cmd == "report":
        report(argv[2])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
