#!/usr/bin/env python3
"""The attacks of bench/abuse.sh against a running `annexa webhook` on 127.0.0.1.

Each attack runs for DURATION seconds, from address 127.0.0.2 (the attacker is another pod),
while three observers run beside it in a process of their own, from 127.0.0.1: a health prober
(GET /healthz on a new TLS connection every 50 ms, as a kubelet probe would), a legitimate
reviewer (the 9.5 KB GPU-pod review on a new TLS connection every 100 ms, expecting an answer
with `allowed`), and an RSS sampler of the server process. Per attack it prints: health p99
and worst latency, peak RSS against the chart's limit, the slowest answer to any request (the
deadline is 4 s), and how many legitimate reviews were answered. Standard library only."""

import asyncio
import json
import multiprocessing
import os
import ssl
import sys
import time

HOST = "127.0.0.1"
PORT = int(os.environ.get("PORT", "18443"))
PID = int(os.environ["SERVER_PID"])
DURATION = float(os.environ.get("DURATION", "10"))
LIMIT_MIB = float(os.environ.get("LIMIT_MIB", "256"))
DEADLINE = 4.0
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOOD = open(os.path.join(ROOT, "benches/fixtures/gpu-pod-review.json"), "rb").read()


def tls_context(alpn=None):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


CTX = tls_context(["http/1.1"])


ATTACKER = ("127.0.0.2", 0)


async def connect(ctx=CTX, source=None):
    return await asyncio.open_connection(HOST, PORT, ssl=ctx, server_hostname="localhost",
                                         local_addr=source)


async def exchange(reader, writer, method, path, body=b""):
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    writer.write(head + body)
    await writer.drain()
    line = await reader.readline()
    if not line:
        raise ConnectionError("closed before an answer")
    status = int(line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.decode().partition(":")
        if key.lower() == "content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def one_shot(method, path, body=b"", timeout=10.0, source=None):
    """A request on a new connection: (status or None, seconds, body)."""
    start = time.monotonic()
    writer = None
    try:
        async def go():
            nonlocal writer
            reader, writer = await connect(source=source)
            return await exchange(reader, writer, method, path, body)
        status, data = await asyncio.wait_for(go(), timeout)
        return status, time.monotonic() - start, data
    except Exception:
        return None, time.monotonic() - start, b""
    finally:
        if writer:
            writer.close()


class Observed:
    def __init__(self):
        self.health = []
        self.health_failed = 0
        self.legit_ok = 0
        self.legit_failed = 0
        self.legit_slowest = 0.0
        self.rss_peak = 0.0
        self.slowest = 0.0
        self.statuses = {}


def rss_mib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


async def observe(obs, stop):
    async def health():
        while not stop.is_set():
            status, took, _ = await one_shot("GET", "/healthz", timeout=2.0)
            if status == 200:
                obs.health.append(took)
            else:
                obs.health_failed += 1
                obs.health.append(2.0)
            await asyncio.sleep(0.05)

    async def legit():
        while not stop.is_set():
            status, took, data = await one_shot("POST", "/validate", GOOD)
            obs.slowest = max(obs.slowest, took)
            obs.legit_slowest = max(obs.legit_slowest, took)
            if status == 200 and b'"allowed"' in data:
                obs.legit_ok += 1
            else:
                obs.legit_failed += 1
            await asyncio.sleep(0.1)

    async def rss():
        while not stop.is_set():
            obs.rss_peak = max(obs.rss_peak, rss_mib())
            await asyncio.sleep(0.05)

    await asyncio.gather(health(), legit(), rss())


def review(obj, uid="abuse"):
    kind = obj["kind"]
    group, _, version = obj["apiVersion"].rpartition("/")
    return json.dumps({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": kind.lower() + "s"},
            "name": obj["metadata"]["name"], "namespace": obj["metadata"].get("namespace"),
            "operation": "CREATE", "userInfo": {"username": "mallory"},
            "object": obj, "dryRun": False,
        },
    }, separators=(",", ":")).encode()


def long_list_model(n):
    return review({
        "apiVersion": "annexa.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "m", "namespace": "ml-prod"},
        "spec": {"model": {"name": "m", "version": "1", "digest": "sha256:" + "0" * 64},
                 "image": "registry.example.com/m@sha256:" + "0" * 64,
                 "trainingDatasets": [f"dataset-{i:06d}" for i in range(n)]},
    })


def big_pod(target_bytes):
    env = []
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "big", "namespace": "ml-prod"},
           "spec": {"containers": [{"name": "c", "image": "registry.example.com/x:1", "env": env}]}}
    size = len(review(pod))
    i = 0
    while size < target_bytes:
        item = {"name": f"VARIABLE_{i:07d}", "value": "v" * 100}
        env.append(item)
        size += len(json.dumps(item, separators=(",", ":"))) + 1
        i += 1
    return review(pod)


async def flood(obs, stop, body, concurrency):
    async def worker():
        while not stop.is_set():
            status, took, _ = await one_shot("POST", "/validate", body, source=ATTACKER)
            obs.slowest = max(obs.slowest, took)
            obs.statuses[status] = obs.statuses.get(status, 0) + 1
    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def hold(obs, stop, count, opener):
    """Keeps `count` connections open, reopening those the server closes."""
    held = []

    async def keeper():
        while not stop.is_set():
            try:
                conn = await asyncio.wait_for(opener(), 5)
            except Exception:
                obs.statuses["refused"] = obs.statuses.get("refused", 0) + 1
                await asyncio.sleep(0.05)
                continue
            held.append(conn)
            reader = conn[0]
            try:
                # Wait until the server closes it (or the attack ends).
                while not stop.is_set():
                    try:
                        data = await asyncio.wait_for(reader.read(1024), 0.5)
                        if not data:
                            obs.statuses["closed by server"] = obs.statuses.get("closed by server", 0) + 1
                            break
                    except asyncio.TimeoutError:
                        pass
            except Exception:
                obs.statuses["closed by server"] = obs.statuses.get("closed by server", 0) + 1
            conn[1].close()
    await asyncio.gather(*(keeper() for _ in range(count)))


async def silent_tls():
    return await connect(source=ATTACKER)


async def silent_tcp():
    return await asyncio.open_connection(HOST, PORT, local_addr=ATTACKER)


H2 = tls_context(["h2"])


async def idle_h2():
    reader, writer = await connect(H2, source=ATTACKER)
    # Connection preface and an empty SETTINGS frame, then nothing.
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    await writer.drain()
    return reader, writer


async def slow_body(obs, stop, count):
    async def worker():
        while not stop.is_set():
            start = time.monotonic()
            try:
                reader, writer = await connect(source=ATTACKER)
                writer.write(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(GOOD)}\r\n\r\n".encode())
                answered = None
                for i in range(len(GOOD)):
                    if stop.is_set():
                        break
                    writer.write(GOOD[i:i + 1])
                    await writer.drain()
                    try:
                        line = await asyncio.wait_for(reader.readline(), 0.1)
                        if line:
                            answered = int(line.split()[1])
                            break
                    except asyncio.TimeoutError:
                        pass
                if answered is not None:
                    took = time.monotonic() - start
                    obs.slowest = max(obs.slowest, took)
                    obs.statuses[answered] = obs.statuses.get(answered, 0) + 1
                writer.close()
            except Exception:
                obs.statuses["error"] = obs.statuses.get("error", 0) + 1
                await asyncio.sleep(0.05)
    await asyncio.gather(*(worker() for _ in range(count)))


def p99(values):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.99))]


def quiet(loop):
    # Connections the server closes under the attack's feet are expected; no tracebacks.
    loop.set_exception_handler(lambda loop, context: None)


def observer_main(results, duration):
    # Not pinned with the attacker: the observers measure the server, not the attacker's core.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))

    async def go():
        quiet(asyncio.get_running_loop())
        obs = Observed()
        stop = asyncio.Event()
        task = asyncio.create_task(observe(obs, stop))
        await asyncio.sleep(duration)
        stop.set()
        try:
            await asyncio.wait_for(task, 15)
        except asyncio.TimeoutError:
            task.cancel()
        return obs
    results.put(vars(asyncio.run(go())))


async def run(name, attack):
    attacked = Observed()
    stop = asyncio.Event()
    results = multiprocessing.Queue()
    observer = multiprocessing.Process(target=observer_main, args=(results, DURATION))
    observer.start()
    task = asyncio.create_task(attack(attacked, stop))
    await asyncio.sleep(DURATION)
    stop.set()
    try:
        await asyncio.wait_for(task, 15)
    except (asyncio.TimeoutError, Exception):
        task.cancel()
    obs = Observed()
    vars(obs).update(results.get(timeout=30))
    observer.join()
    obs.slowest = max(obs.slowest, attacked.slowest)
    obs.statuses = attacked.statuses
    health_p99 = p99(obs.health) * 1000
    verdict = []
    verdict.append("health ok" if health_p99 <= 100 and obs.health_failed == 0 else "HEALTH SLOW")
    verdict.append("rss ok" if obs.rss_peak < LIMIT_MIB else "RSS OVER")
    verdict.append("deadline ok" if obs.slowest <= DEADLINE + 0.5 else "PAST DEADLINE")
    verdict.append("reviews ok" if obs.legit_failed == 0 and obs.legit_ok > 0 else "REVIEWS FAILED")
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(obs.statuses.items(), key=lambda kv: str(kv[0])))
    print(f"## {name}")
    print(f"  health: p99 {health_p99:.1f} ms, worst {max(obs.health or [0]) * 1000:.1f} ms, "
          f"{len(obs.health)} probes, {obs.health_failed} failed")
    print(f"  rss: peak {obs.rss_peak:.1f} MiB (limit {LIMIT_MIB:.0f} MiB)")
    print(f"  slowest answer to any request: {obs.slowest * 1000:.0f} ms (deadline {DEADLINE * 1000:.0f} ms)")
    print(f"  legitimate reviews: {obs.legit_ok} answered, {obs.legit_failed} failed, "
          f"slowest {obs.legit_slowest * 1000:.0f} ms")
    print(f"  attack requests: {statuses or '-'}")
    print(f"  => {'; '.join(verdict)}  (load {os.getloadavg()[0]:.2f})", flush=True)


async def main():
    quiet(asyncio.get_running_loop())
    only = sys.argv[1:]
    long_list = long_list_model(120_000)
    largest = big_pod(int(os.environ.get("MAX_BODY", str(4 * 1024 * 1024))) - 64 * 1024)
    attacks = [
        ("baseline: no attack", lambda obs, stop: stop.wait()),
        (f"long list: ModelDeployment with 120k trainingDatasets ({len(long_list) / 1e6:.1f} MB), 8 at once",
         lambda obs, stop: flood(obs, stop, long_list, 8)),
        (f"largest accepted review: Pod of {len(largest) / 2**20:.1f} MiB, 64 at once",
         lambda obs, stop: flood(obs, stop, largest, 64)),
        ("1500 TLS connections that send nothing", lambda obs, stop: hold(obs, stop, 1500, silent_tls)),
        ("1500 TCP connections without a TLS handshake", lambda obs, stop: hold(obs, stop, 1500, silent_tcp)),
        ("600 idle HTTP/2 connections", lambda obs, stop: hold(obs, stop, 600, idle_h2)),
        ("200 slow senders (one body byte per 100 ms)", lambda obs, stop: slow_body(obs, stop, 200)),
    ]
    for i, (name, attack) in enumerate(attacks):
        if only and str(i) not in only:
            continue
        await run(name, attack)
        await asyncio.sleep(1)


asyncio.run(main())
