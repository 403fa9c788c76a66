"""`invertornot-ssg serve` under load: concurrent clients on loopback, new images and cached lookups.

    python benchmarks/bench_serve.py                          # 64 new images, 200 lookups/s for 10 s
    python benchmarks/bench_serve.py --rate 400 --seconds 5 --clients 8

Starts `invertornot-ssg serve` (default embedder and shipped head, a fresh store, 127.0.0.1 and a
free port) in its own process, then, with `--clients` threads each keeping one HTTP/1.1
connection open:

1. new images: the clients upload `--images` distinct web-sized images (half photographs, half
   plots, 800x600), one per request, as fast as answers come: images/s and request latency
   (p50, p99), and how many engine passes the server ran for them (batches formed across
   concurrent requests: fewer passes than images);
2. cached lookups: POST /api/sha1 of one of those images at a fixed `--rate` (open loop: each
   request has a scheduled time; latency counts from it, so a server that falls behind shows it)
   for `--seconds`: achieved rate, p50, p99, max;
3. cached lookups, closed loop: as many as the clients get answered in `--seconds`.

Everything is bounded (at most 64 clients, 120 s a phase, the server is stopped at the end) and
stays on loopback. The issue's target: cached lookups p99 under 10 ms at 200 requests/s on 2 cores.
"""
from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

from common import percentile, save_results, table  # noqa: E402

HOST = "127.0.0.1"
MAX_CLIENTS, MAX_SECONDS = 64, 120.0


def make_images(n: int, seed: int = 0) -> list[bytes]:
    """n distinct web-sized images: photographs (crops of scikit-image's, with grain) and plots."""
    import numpy as np
    from PIL import Image, ImageDraw
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    out = []
    for i in range(n):
        if i % 2 == 0:
            base = Image.fromarray(photos[i // 2 % len(photos)]).resize((800, 600))
            grain = rng.normal(0, 6, (600, 800, 3))
            image = Image.fromarray(np.clip(np.asarray(base, float) + grain, 0, 255).astype(np.uint8))
            buf = io.BytesIO()
            image.save(buf, "JPEG", quality=85)
        else:
            image = Image.new("RGB", (800, 600), "white")
            draw = ImageDraw.Draw(image)
            draw.line([(60, 540), (60, 40), (60, 540), (760, 540)], fill="black", width=2)
            ys = np.cumsum(rng.normal(size=70)) * 8 + 300
            draw.line([(60 + 10 * j, float(y)) for j, y in enumerate(ys)], fill=tuple(rng.integers(0, 200, 3)), width=2)
            buf = io.BytesIO()
            image.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def multipart(content: bytes, name: str) -> tuple[bytes, str]:
    boundary = hashlib.sha1(content).hexdigest()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection; `post` returns (status, body, seconds)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection(HOST, port, timeout=120)
        self.conn.connect()
        # http.client sends headers and body in two writes: without this, Nagle's algorithm holds
        # the body until the server's delayed ACK (40 ms), as no browser does.
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        self.conn.request("POST", path, body, {"Content-Type": content_type})
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self):
        self.conn.close()


def start_server(store: Path) -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen(
        [sys.executable, "-m", "invertornot_ssg.cli", "serve", "--store", str(store), "--host", HOST, "--port", "0"],
        cwd=store.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []  # the model loads first (warnings may come), then the address is printed
    while not (found := re.search(r"http://127\.0\.0\.1:(\d+)/", seen[-1] if seen else "")):
        seen.append(server.stdout.readline())
        if not seen[-1] and server.poll() is not None:
            raise SystemExit("the server did not start:\n" + "".join(seen))
    port = int(found.group(1))
    started = time.perf_counter()
    while True:  # the model loads before the first answer
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
            break
        except OSError:
            if server.poll() is not None or time.perf_counter() - started > MAX_SECONDS:
                server.kill()
                raise SystemExit("the server did not answer")
            time.sleep(0.2)
    print(f"server ready in {time.perf_counter() - started:.1f} s (model and head loaded)", file=sys.stderr)
    return server, port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_counters(port: int) -> dict:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", "/")
    about = json.loads(conn.getresponse().read())
    conn.close()
    return about


def new_images(port: int, images: list[bytes], clients: int) -> dict:
    """Every client uploads the next image until none is left (closed loop)."""
    todo = iter(range(len(images)))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []

    def work():
        client = Client(port)
        try:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                body, ctype = multipart(images[i], f"{i}.img")
                t0 = time.perf_counter()
                status, reply = client.post("/api/file", body, ctype)
                latencies.append(time.perf_counter() - t0)
                answer = json.loads(reply)[0] if status == 200 else {"error": f"HTTP {status}"}
                if answer["error"]:
                    errors.append(answer["error"])
        finally:
            client.close()

    before = server_counters(port)
    started = time.perf_counter()
    run_threads(work, clients)
    wall = time.perf_counter() - started
    after = server_counters(port)
    return {"images": len(images), "clients": clients, "wall_s": wall, "images_per_s": len(images) / wall,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
            "engine_passes": after["engine_passes"] - before["engine_passes"], "errors": len(errors)}


def lookups_open_loop(port: int, pid: int, sha1s: list[str], rate: float, seconds: float, clients: int) -> dict:
    """POST /api/sha1 with one sha1, `rate` a second spread over the clients, for `seconds`."""
    interval = clients / rate  # each client's own schedule
    latencies: list[float] = []
    late: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.2

    def work(k: int):
        client = Client(port)
        try:
            n = 0
            while True:
                due = start + (k / clients) * interval + n * interval
                if due - start >= seconds:
                    return
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                body = json.dumps([sha1s[(k + n) % len(sha1s)]]).encode()
                status, reply = client.post("/api/sha1", body, "application/json")
                done = time.perf_counter()
                latencies.append(done - due)
                late.append(max(0.0, -wait))
                if status != 200 or json.loads(reply)[0]["error"]:
                    errors.append(reply.decode()[:200])
                n += 1
        finally:
            client.close()

    before, cpu = server_counters(port), cpu_seconds(pid)
    run_threads(work, clients, indexed=True)
    wall = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu
    after = server_counters(port)
    return {"target_rate": rate, "achieved_rate": len(latencies) / wall, "requests": len(latencies),
            "server_cpu_ms_per_request": 1000 * cpu / max(1, len(latencies)),
            "clients": clients, "p50_ms": 1000 * percentile(latencies, 50),
            "p99_ms": 1000 * percentile(latencies, 99), "max_ms": 1000 * max(latencies),
            "engine_passes": after["engine_passes"] - before["engine_passes"], "errors": len(errors)}


def lookups_closed_loop(port: int, pid: int, sha1s: list[str], seconds: float, clients: int) -> dict:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    def work(k: int):
        client = Client(port)
        try:
            n = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                client.post("/api/sha1", json.dumps([sha1s[(k + n) % len(sha1s)]]).encode(), "application/json")
                latencies.append(time.perf_counter() - t0)
                n += 1
        finally:
            client.close()

    started, cpu = time.perf_counter(), cpu_seconds(pid)
    run_threads(work, clients, indexed=True)
    wall = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu
    return {"clients": clients, "requests": len(latencies), "rate": len(latencies) / wall,
            "server_cpu_ms_per_request": 1000 * cpu / max(1, len(latencies)),
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def run_threads(work, n: int, indexed: bool = False) -> None:
    threads = [threading.Thread(target=work, args=(k,) if indexed else (), daemon=True) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(MAX_SECONDS + 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=64, help="new images to upload (default 64)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8, at most 64)")
    parser.add_argument("--rate", type=float, default=200.0, help="cached lookups a second (default 200)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each lookup phase (default 10)")
    args = parser.parse_args()
    clients = max(1, min(MAX_CLIENTS, args.clients))
    seconds = max(1.0, min(MAX_SECONDS, args.seconds))

    images = make_images(args.images)
    sha1s = [hashlib.sha1(i).hexdigest() for i in images]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        server, port = start_server(Path(tmp) / "store")
        try:
            fresh = new_images(port, images, clients)
            open_loop = lookups_open_loop(port, server.pid, sha1s, args.rate, seconds, clients)
            closed_loop = lookups_closed_loop(port, server.pid, sha1s, seconds, clients)
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()

    rows = [
        ["new images (upload, 1 a request)", f"{fresh['images_per_s']:.1f} img/s", f"{fresh['p50_ms']:.0f}",
         f"{fresh['p99_ms']:.0f}", f"{fresh['images']} images in {fresh['engine_passes']} engine passes"],
        [f"cached sha1, open loop at {open_loop['target_rate']:g}/s", f"{open_loop['achieved_rate']:.0f} req/s",
         f"{open_loop['p50_ms']:.2f}", f"{open_loop['p99_ms']:.2f}",
         f"max {open_loop['max_ms']:.1f} ms; server CPU {open_loop['server_cpu_ms_per_request']:.2f} ms a request;"
         f" {open_loop['engine_passes']} engine passes"],
        ["cached sha1, closed loop", f"{closed_loop['rate']:.0f} req/s", f"{closed_loop['p50_ms']:.2f}",
         f"{closed_loop['p99_ms']:.2f}",
         f"{clients} clients; server CPU {closed_loop['server_cpu_ms_per_request']:.2f} ms a request"],
    ]
    print(table(["phase", "throughput", "p50 ms", "p99 ms", "notes"], rows))
    errors = fresh["errors"] + open_loop["errors"]
    if errors:
        print(f"{errors} requests answered with an error", file=sys.stderr)
    save_results("serve", {"new_images": fresh, "lookups_open_loop": open_loop, "lookups_closed_loop": closed_loop,
                           "cpus_usable": len(os.sched_getaffinity(0))})


if __name__ == "__main__":
    main()
