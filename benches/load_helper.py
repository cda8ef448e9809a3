#!/usr/bin/env python3
"""Helpers for benches/load.sh (Python 3 standard library only).

Subcommands:
  freeport                          print a free TCP port on 127.0.0.1
  waitport HOST:PORT SECONDS        wait until a TCP connect succeeds
  bodies FIXTURES_DIR OUT_DIR       write the request bodies the load uses
  check URL BODY KIND [H: V ...]    one request; exit 1 unless 200 with the expected shape
  rss PID                           "rss_kb hwm_kb" summed over PID and its descendants
  cputicks PID                      user+system CPU clock ticks of PID and its descendants
  streams URL BODY KEY N PID KIND   hold N streams open at once, sample PID's RSS, verify all
                                    (KIND anthropic: Anthropic events; openai: OpenAI chunks)
  busy PID                          "busy_ticks our_ticks": all CPUs' busy ticks, and the ticks
                                    of PID (the script) and its descendants (for noise)
  waitquiet PID SECONDS PERCENT     wait (at most SECONDS) until processes outside PID's tree
                                    use under PERCENT of one CPU for 10 s
  table RESULTS.tsv MEM.tsv         print the results and the issue-5 targets as Markdown
"""
import asyncio
import json
import re
import os
import socket
import statistics
import sys
import time
import urllib.error
import urllib.request


def freeport():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def waitport(addr, seconds):
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + float(seconds)
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=0.5).close()
            return 0
        except OSError:
            time.sleep(0.1)
    print(f"nothing listens on {addr} after {seconds}s", file=sys.stderr)
    return 1


def bodies(fixtures, out):
    """small/big, non-streaming and streaming, compact JSON like the clients send."""
    os.makedirs(out, exist_ok=True)
    for name, src in (("small", "claude_code_small_request.json"),
                      ("big", "claude_code_request.json")):
        with open(os.path.join(fixtures, src), "rb") as f:
            req = json.load(f)
        for stream in (False, True):
            req["stream"] = stream
            path = os.path.join(out, f"{name}{'-stream' if stream else ''}.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(req, f, ensure_ascii=False, separators=(",", ":"))
    # Codex's captured tool-result request (issue 16), for the Responses passthrough.
    with open(os.path.join(fixtures, "codex", "codex-exec-command-tool-result.json"), "rb") as f:
        req = json.load(f)
    for stream in (False, True):
        req["stream"] = stream
        path = os.path.join(out, f"codex{'-stream' if stream else ''}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(req, f, ensure_ascii=False, separators=(",", ":"))
    for n in sorted(os.listdir(out)):
        print(f"{n}: {os.path.getsize(os.path.join(out, n))} bytes")


def check(url, body_path, kind, headers):
    """kind: openai-json | openai-sse | anthropic-json | anthropic-sse | responses-json |
    responses-sse."""
    with open(body_path, "rb") as f:
        body = f.read()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("content-type", "application/json")
    for h in headers:
        k, v = h.split(":", 1)
        req.add_header(k.strip(), v.strip())
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, data = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, data = e.code, e.read()
    except OSError as e:
        print(f"check {url}: {e}", file=sys.stderr)
        return 1
    text = data.decode("utf-8", "replace")
    ok = status == 200
    why = f"status {status}"
    if ok and kind.endswith("json"):
        try:
            doc = json.loads(text)
        except ValueError:
            ok, why = False, "not JSON"
        else:
            if kind == "anthropic-json":
                ok = doc.get("type") == "message" and bool(doc.get("content"))
            elif kind == "responses-json":
                ok = doc.get("object") == "response" and bool(doc.get("output"))
            else:
                ok = bool(doc.get("choices"))
            why = "unexpected JSON shape"
    elif ok and kind == "anthropic-sse":
        ok = "message_start" in text and "message_stop" in text and "content_block_delta" in text
        why = "not a complete Anthropic event stream"
    elif ok and kind == "responses-sse":
        ok = "response.output_text.delta" in text and "response.completed" in text
        why = "not a complete Responses event stream"
    elif ok and kind == "openai-sse":
        ok = "[DONE]" in text
        why = "not a complete OpenAI stream"
    if not ok:
        print(f"check {url} ({kind}): {why}: {text[:400]}", file=sys.stderr)
        return 1
    return 0


def _tree(pid):
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [int(pid)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_tree(pid):
    pids = _tree(pid)
    return (sum(_status_kb(p, "VmRSS") for p in pids),
            sum(_status_kb(p, "VmHWM") for p in pids))


def cputicks(pid):
    total = 0
    for p in _tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    print(total)


def rss(pid):
    r, h = rss_tree(pid)
    print(r, h)


def settle(pid, seconds, below_kb):
    """After a burst: RSS every second for `seconds`; prints the seconds until it first went
    under `below_kb` (-1: never) and the RSS at the end, in kB."""
    seconds, below_kb = int(seconds), int(below_kb)
    under = -1
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        r, _ = rss_tree(pid)
        if under < 0 and r < below_kb:
            under = round(elapsed)
        if elapsed >= seconds:
            break
        time.sleep(1)
    print(under, r)


async def _one_stream(host, port, path, body, key, kind, opened, results):
    first_marker = b"message_start" if kind == "anthropic" else b"data:"
    last_marker = b"event: message_stop" if kind == "anthropic" else b"data: [DONE]"
    status, data = 0, b""
    try:
        reader, writer = await asyncio.open_connection(host, port)
        head = (f"POST {path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
                f"content-type: application/json\r\nanthropic-version: 2023-06-01\r\n"
                f"x-api-key: {key}\r\ncontent-length: {len(body)}\r\n"
                f"connection: close\r\n\r\n").encode()
        writer.write(head + body)
        await writer.drain()
        first = True
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            data += chunk
            if first and b"\r\n\r\n" in data and first_marker in data:
                first = False
                opened.append(1)
        writer.close()
        status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    except (OSError, ValueError, IndexError) as e:
        data += repr(e).encode()
    # Chunk framing never splits an event name in practice, but strip it to be sure.
    head, _, rest = data.partition(b"\r\n\r\n")
    if b"chunked" in head.lower():
        plain, pos = b"", 0
        while True:
            end = rest.find(b"\r\n", pos)
            if end < 0:
                break
            try:
                size = int(rest[pos:end].split(b";")[0], 16)
            except ValueError:
                break
            if size == 0:
                break
            plain += rest[end + 2:end + 2 + size]
            pos = end + 2 + size + 2
        rest = plain
    results.append((status, last_marker in rest))


async def _streams(url, body_path, key, n, pid, kind):
    assert url.startswith("http://")
    hostport, _, path = url[len("http://"):].partition("/")
    host, port = hostport.rsplit(":", 1)
    with open(body_path, "rb") as f:
        body = f.read()
    opened, results = [], []
    base_rss, _ = rss_tree(pid)
    start = time.time()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(
            _one_stream(host, int(port), "/" + path, body, key, kind, opened, results)))
        if i % 50 == 49:
            await asyncio.sleep(0.01)
    all_open_at = None
    peak_all_open = 0
    peak = 0
    samples = 0
    while len(results) < n and time.time() - start < 120:
        await asyncio.sleep(0.2)
        r, _ = rss_tree(pid)
        peak = max(peak, r)
        if len(opened) >= n and not results:
            all_open_at = all_open_at or time.time() - start
            peak_all_open = max(peak_all_open, r)
            samples += 1
    await asyncio.gather(*tasks, return_exceptions=True)
    _, hwm = rss_tree(pid)
    good = sum(1 for s, stop in results if s == 200 and stop)
    print(f"streams={n} completed_ok={good} failed={n - good} "
          f"all_open_after_s={all_open_at if all_open_at is None else round(all_open_at, 2)} "
          f"samples_all_open={samples} rss_before_kb={base_rss} "
          f"rss_all_open_max_kb={peak_all_open} rss_max_kb={peak} hwm_kb={hwm} "
          f"seconds={time.time() - start:.1f}")
    return 0 if good == n and all_open_at is not None else 1


def streams(url, body_path, key, n, pid, kind="anthropic"):
    return asyncio.run(_streams(url, body_path, key, int(n), pid, kind))


def _ticks(pid, children=False):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t


def _busy(script):
    """Busy ticks of all CPUs, and the ticks spent by the script and everything it started,
    reaped children included: the difference is CPU time taken by processes that are not part
    of the benchmark."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    busy_ticks = sum(cpu[:8]) - cpu[3] - cpu[4]
    ours = 0
    for p in _tree(script):
        ours += _ticks(p, children=True)
    return busy_ticks, ours


def busy(script):
    print(*_busy(int(script)))


def waitquiet(script, seconds, percent):
    hz = os.sysconf("SC_CLK_TCK")
    deadline = time.time() + float(seconds)
    quiet_since = None
    last = _busy(int(script))
    while time.time() < deadline:
        time.sleep(1)
        now = _busy(int(script))
        other = ((now[0] - last[0]) - (now[1] - last[1])) / hz * 100
        last = now
        if other < float(percent):
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since >= 10:
                return 0
        else:
            quiet_since = None
    print(f"other processes still use CPU after {seconds}s; measuring anyway", file=sys.stderr)
    return 1


# -------------------------------------------------------------------------------------------
# The report

def _fmt_rps(v):
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}"


def _fmt_us(us):
    if us >= 10000:
        return f"{us / 1000:,.0f} ms"
    if us >= 1000:
        return f"{us / 1000:.1f} ms"
    return f"{us:.0f} µs"


def table(results_path, mem_path):
    runs = []
    with open(results_path) as f:
        cols = f.readline().rstrip("\n").split("\t")
        for line in f:
            runs.append(dict(zip(cols, line.rstrip("\n").split("\t"))))
    for r in runs:
        for k in ("conns", "requests", "non2xx", "sock_errors", "warm_errors"):
            r[k] = int(r[k])
        for k in ("rps", "p50_us", "p99_us", "mb_s", "cpu_us_per_req", "other_cpu_pct"):
            r[k] = float(r[k])
        r["round"] = int(r.get("round") or 1)
    mem = {}
    if os.path.exists(mem_path):
        with open(mem_path) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("\t")
                mem[k] = v

    # One row per workload, target and connection count: with --rounds, the run with the
    # median req/s stands for the row (errors of every run are counted).
    groups = {}
    for r in runs:
        groups.setdefault((r["workload"], r["target"], r["conns"]), []).append(r)
    rows = []
    for group in groups.values():
        row = dict(sorted(group, key=lambda r: r["rps"])[(len(group) - 1) // 2])
        row["runs"] = len(group)
        for k in ("non2xx", "sock_errors", "warm_errors"):
            row[k] = sum(r[k] for r in group)
        rows.append(row)

    print("| workload | target | conns | req/s | p50 | p99 | CPU/req | requests | non-2xx "
          "| socket errors | other CPU |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        target = r["target"] + (f" (median of {r['runs']})" if r["runs"] > 1 else "")
        print(f"| {r['workload']} | {target} | {r['conns']} | {_fmt_rps(r['rps'])} | "
              f"{_fmt_us(r['p50_us'])} | {_fmt_us(r['p99_us'])} | "
              f"{_fmt_us(r['cpu_us_per_req'])} | {r['requests']:,} | "
              f"{r['non2xx']} | {r['sock_errors'] + r['warm_errors']} | "
              f"{r['other_cpu_pct']:.0f}% |")
    print()

    # FlexiProxy against the bare run just before it, round by round.
    def ratios(workload, conns):
        bare = {r["round"]: r for r in groups.get((workload, "bare-pingora", conns), [])}
        fp = {r["round"]: r for r in groups.get((workload, "flexiproxy", conns), [])}
        return [(bare[n], fp[n]) for n in sorted(bare) if n in fp and bare[n]["rps"]]

    paired = [(w, c, ratios(w, c)) for (w, t, c) in groups if t == "flexiproxy"]
    paired = [(w, c, p) for (w, c, p) in paired if len(p) > 1]
    if paired:
        print("| workload | conns | bare Pingora req/s | FlexiProxy req/s | ratio per round "
              "| median ratio | sum ratio |")
        print("|---|---:|---|---|---|---:|---:|")
        for w, c, p in paired:
            each = [f / b for b, f in ((b["rps"], f["rps"]) for b, f in p)]
            total = sum(f["rps"] for _, f in p) / sum(b["rps"] for b, _ in p)
            print(f"| {w} | {c} | {' · '.join(_fmt_rps(b['rps']) for b, _ in p)} | "
                  f"{' · '.join(_fmt_rps(f['rps']) for _, f in p)} | "
                  f"{' · '.join(f'{x:.0%}' for x in each)} | "
                  f"**{statistics.median(each):.0%}** | {total:.0%} |")
        print()

    # Issue 29: the inspector's cost, CPU per request of the inspected process against the
    # plain one in the same round.
    inspected = [(w, c) for (w, t, c) in groups if t == "flexiproxy-inspect"]
    if inspected:
        print("| workload | conns | CPU/req plain, per round | inspected (keep: 50) | median "
              "plain | median inspected | inspected/plain |")
        print("|---|---:|---|---|---:|---:|---:|")
        for w, c in inspected:
            plain = {r["round"]: r["cpu_us_per_req"] for r in groups.get((w, "flexiproxy", c), [])}
            insp = {r["round"]: r["cpu_us_per_req"] for r in groups[(w, "flexiproxy-inspect", c)]}
            both = [n for n in sorted(insp) if n in plain]
            if not both:
                continue
            a = statistics.median(plain[n] for n in both)
            b = statistics.median(insp[n] for n in both)
            print(f"| {w} | {c} | {' · '.join(f'{plain[n]:.0f}' for n in both)} | "
                  f"{' · '.join(f'{insp[n]:.0f}' for n in both)} | {a:.0f} µs | {b:.0f} µs | "
                  f"**{b / a:.2f}** |")
        print()

    def ratio_to_bare(workload, conns):
        """FlexiProxy's req/s over bare Pingora's: the median over rounds when alternated."""
        p = ratios(workload, conns)
        if not p:
            return None, ""
        how = f" (median of {len(p)} rounds)" if len(p) > 1 else ""
        return statistics.median(f["rps"] / b["rps"] for b, f in p), how

    if mem:
        print("| memory | value |")
        print("|---|---|")
        for k, v in mem.items():
            print(f"| {k} | {v} |")
        print()

    def get(workload, target, conns):
        for r in rows:
            if r["workload"] == workload and r["target"] == target and r["conns"] == conns:
                return r
        return None

    hi = max((r["conns"] for r in rows), default=8)
    checks = []

    def verdict(ok):
        return "met" if ok else "MISSED"

    fp, direct = get("small", "flexiproxy", hi), get("small", "direct", 1)
    ratio, how = ratio_to_bare("small", hi)
    if fp and ratio is not None:
        checks.append((f"small non-streaming ≥ 10,000 req/s (c={hi})", _fmt_rps(fp["rps"]),
                       verdict(fp["rps"] >= 10000)))
        checks.append((f"small ≥ 70% of bare Pingora (c={hi})", f"{ratio:.0%}{how}",
                       verdict(ratio >= 0.70)))
    fp = get("75k", "flexiproxy", hi)
    if fp:
        checks.append((f"75 KB non-streaming ≥ 3,000 req/s (c={hi})", _fmt_rps(fp["rps"]),
                       verdict(fp["rps"] >= 3000)))
    fp = get("stream-75k", "flexiproxy", hi)
    if fp:
        checks.append((f"75 KB streamed ≥ 2,000 responses/s (c={hi})", _fmt_rps(fp["rps"]),
                       verdict(fp["rps"] >= 2000)))
    fp1 = get("small", "flexiproxy", 1)
    if fp1 and direct:
        added = fp1["p50_us"] - direct["p50_us"]
        checks.append(("added p50 at 1 connection ≤ 150 µs (small)", f"{added:.0f} µs",
                       verdict(added <= 150)))
    for w in ("anth-small", "anth-75k", "anth-stream-75k"):
        ratio, how = ratio_to_bare(w, hi)
        if ratio is not None:
            checks.append((f"issue 8: {w} passthrough within 10% of bare Pingora (c={hi})",
                           f"{ratio:.0%} of bare{how}", verdict(ratio >= 0.90)))
    for w in ("resp-codex-45k", "resp-stream-codex-45k"):
        ratio, how = ratio_to_bare(w, hi)
        if ratio is not None:
            checks.append((f"issue 16: {w} Responses passthrough within 10% of bare Pingora "
                           f"(c={hi})", f"{ratio:.0%} of bare{how}", verdict(ratio >= 0.90)))
    after = mem.get("flexiproxy RSS after the load runs")
    if after:
        mb = float(after.split()[0])
        checks.append(("RSS ≤ 50 MB after the benchmarks", after, verdict(mb <= 50)))
    for k, v in mem.items():
        if k.startswith("flexiproxy RSS, ") and "open streams" in k:
            mb = float(v.split()[0])
            checks.append((f"RSS ≤ 100 MB with {k[len('flexiproxy RSS, '):]}", v.split(" (")[0],
                           verdict(mb <= 100)))
    lost = sum(r["non2xx"] + r["sock_errors"] + r["warm_errors"] for r in runs)
    stream_fail = sum(int(m.group(1)) for v in mem.values()
                      for m in [re.search(r"failed=(\d+)", v)] if m)
    checks.append(("no request lost or failed", f"{lost} failed load requests, "
                   f"{stream_fail} failed held streams", verdict(lost == 0 and stream_fail == 0)))
    print("| target (issue 5) | measured | |")
    print("|---|---|---|")
    for name, value, v in checks:
        print(f"| {name} | {value} | {v} |")
    return 0


def main(argv):
    if not argv:
        print(__doc__)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "freeport":
        freeport()
        return 0
    if cmd == "waitport":
        return waitport(*args)
    if cmd == "bodies":
        bodies(*args)
        return 0
    if cmd == "check":
        return check(args[0], args[1], args[2], args[3:])
    if cmd == "cputicks":
        cputicks(args[0])
        return 0
    if cmd == "rss":
        rss(args[0])
        return 0
    if cmd == "settle":
        settle(*args)
        return 0
    if cmd == "busy":
        busy(args[0])
        return 0
    if cmd == "waitquiet":
        return waitquiet(*args)
    if cmd == "streams":
        return streams(*args)
    if cmd == "table":
        return table(*args)
    print(f"unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
