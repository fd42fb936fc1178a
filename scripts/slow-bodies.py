#!/usr/bin/env python3
"""Resident memory of a sluice server under many slow large request bodies.

Starts `SLUICE serve` on a temporary data directory, then opens CONNECTIONS connections that
each send a SIZE_MIB body to POST /v1/queues/q/messages slowly, and prints the server's
resident memory before, at the peak, and SETTLE seconds after the connections are gone, with
how the requests were answered.

    scripts/slow-bodies.py target/debug/sluice [CONNECTIONS=60] [SIZE_MIB=15] [SETTLE=15]
"""

import collections
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

TOKEN = "slow-bodies-token"


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    binary = sys.argv[1]
    connections = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    size = (int(sys.argv[3]) if len(sys.argv) > 3 else 15) * 1024 * 1024
    settle = float(sys.argv[4]) if len(sys.argv) > 4 else 15.0
    data = tempfile.mkdtemp()
    server = subprocess.Popen(
        [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", data],
        env={**os.environ, "SLUICE_ADMIN_TOKEN": TOKEN, "RUST_LOG": "info", "NO_COLOR": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    addr = None
    for line in server.stderr:
        if "addr=" in line:
            addr = line.split("addr=")[1].split()[0]
            break
    threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
    host, port = addr.rsplit(":", 1)
    base = f"http://{addr}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/readyz")
            break
        except Exception:
            time.sleep(0.1)
    request = urllib.request.Request(
        base + "/v1/queues",
        data=json.dumps({"name": "q"}).encode(),
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json"},
    )
    urllib.request.urlopen(request)
    before = rss_mib(server.pid)

    answers = collections.Counter()
    refused_fast = []

    def upload():
        sock = socket.create_connection((host, int(port)))
        head = (
            f"POST /v1/queues/q/messages HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n"
            f"content-type: application/octet-stream\r\ncontent-length: {size}\r\n\r\n"
        )
        start = time.monotonic()
        sock.sendall(head.encode())
        sock.settimeout(0.25)
        piece = b"x" * (512 * 1024)
        sent = 0
        answer = b""
        while sent < size:
            try:
                answer = sock.recv(4096)
                if answer:
                    break
            except socket.timeout:
                pass
            try:
                sock.sendall(piece)
            except OSError:
                break
            sent += len(piece)
        sock.settimeout(60)
        try:
            while b"\r\n" not in answer:
                more = sock.recv(4096)
                if not more:
                    break
                answer += more
        except OSError:
            pass
        status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/1.1 ") else "closed"
        if status == "503":
            refused_fast.append(time.monotonic() - start)
        answers[status] += 1
        sock.close()

    threads = [threading.Thread(target=upload) for _ in range(connections)]
    for thread in threads:
        thread.start()
    peak = before
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_mib(server.pid))
        time.sleep(0.05)
    ended = rss_mib(server.pid)
    time.sleep(settle)
    after = rss_mib(server.pid)
    server.terminate()
    server.wait()
    slowest_refusal = max(refused_fast) if refused_fast else 0.0
    print(
        f"{connections} connections × {size // 1048576} MiB: answers {dict(answers)}; "
        f"503s within {slowest_refusal:.2f} s; resident memory {before:.0f} MiB before, "
        f"{peak:.0f} MiB at the peak, {ended:.0f} MiB when the last closed, "
        f"{after:.0f} MiB {settle:.0f} s later"
    )


if __name__ == "__main__":
    main()
