"""Requests/s and memory of ``facetrail serve``'s app on two ASGI servers, on loopback.

``python -m bench.serve_http`` runs each server in a child process in turn (Hypercorn, which
``facetrail serve`` uses, and uvicorn, which must be installed separately) and sends it the same
bounded workload from 4 client threads over keep-alive connections: ListCollections requests,
then small DetectFaces requests (a 0.3 MP photo). It prints requests/s and the server's RSS
after each phase. ``--server NAME --port-file PATH`` is the child's side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from facetrail.server import make_server
from facetrail.settings import Settings

PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTO = PHOTO / "face_recognition" / "tests" / "test_images" / "obama.jpg"
CLIENTS = 4
PLAIN_REQUESTS = 2000
IMAGE_REQUESTS = 80


def child(server_name: str, port_file: Path) -> None:
    settings = Settings.from_env()
    # A fresh database; the installed models.
    home = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    settings = settings.with_(home=home, models_dir=settings.resolved_models_dir)
    # Enough inference slots that every client is served: this measures the servers.
    srv = make_server(settings.with_(serve_max_inference=CLIENTS), "127.0.0.1", 0)
    port_file.write_text(str(srv.server_address[1]))
    if server_name == "hypercorn":
        srv.serve_forever()
        return
    import uvicorn

    config = uvicorn.Config(srv.app, log_level="warning", lifespan="off")
    asyncio.run(uvicorn.Server(config).serve(sockets=[srv.socket]))


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def phase(port: int, operation: str, body: bytes, total: int) -> float:
    """Requests/s for ``total`` requests from CLIENTS threads; every answer must be a 200."""
    failures: list[int] = []

    def client(count: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {
            "X-Amz-Target": f"RekognitionService.{operation}",
            "Content-Type": "application/x-amz-json-1.1",
        }
        for _ in range(count):
            conn.request("POST", "/", body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    threads = [threading.Thread(target=client, args=(total // CLIENTS,)) for _ in range(CLIENTS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{operation}: {len(failures)} failed ({sorted(set(failures))})")
    return (total // CLIENTS) * CLIENTS / elapsed


def measure(server_name: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        command = [sys.executable, "-m", "bench.serve_http", "--server", server_name]
        proc = subprocess.Popen([*command, "--port-file", str(port_file)], env=os.environ)
        try:
            deadline = time.monotonic() + 60
            while not port_file.exists() or not port_file.read_text():
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{server_name} did not start")
                time.sleep(0.1)
            port = int(port_file.read_text())
            time.sleep(1.0)
            image = {"Image": {"Bytes": base64.b64encode(PHOTO.read_bytes()).decode()}}
            phase(port, "DetectFaces", json.dumps(image).encode(), CLIENTS)  # loads the models
            result = {"rss_idle_mib": rss_mib(proc.pid)}
            result["list_rps"] = phase(port, "ListCollections", b"{}", PLAIN_REQUESTS)
            result["rss_after_list_mib"] = rss_mib(proc.pid)
            body = json.dumps(image).encode()
            result["detect_rps"] = phase(port, "DetectFaces", body, IMAGE_REQUESTS)
            result["rss_after_detect_mib"] = rss_mib(proc.pid)
            return result
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", choices=["hypercorn", "uvicorn"])
    parser.add_argument("--port-file", type=Path)
    args = parser.parse_args()
    if args.server and args.port_file:
        child(args.server, args.port_file)
        return
    for name in ["hypercorn", "uvicorn"]:
        result = measure(name)
        print(name, " ".join(f"{k}={v:.1f}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
