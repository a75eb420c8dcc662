"""Slow and abusive clients against `make serve`'s configuration (gunicorn behind its nginx front), on 127.0.0.1.

Other loopback addresses stand for other clients: the attacker is 127.0.0.2, a greedy client 127.0.0.3, and the
well-behaved phone 127.0.0.1. Every loop is bounded in count and in time.
"""
from __future__ import annotations

import http.client
import selectors
import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import requests

from guidepost_tools.loadtest.server import LocalServer

pytestmark = pytest.mark.e2e

ATTACKER, GREEDY = "127.0.0.2", "127.0.0.3"
HEADER = b"POST /process HTTP/1.1\r\nHost: guidepost\r\nX-Slow: " + b"a" * 5000 + b"\r\n\r\n"
BODY_HEAD = b"POST /process HTTP/1.1\r\nHost: guidepost\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
TRICKLE_S = 15      # body tricklers send a byte a second this long (more than the front's 10 s gap), then stall
ATTACK_LIMIT_S = 45  # everything must be over by then


@pytest.fixture(scope="module")
def served(model_cache, tmp_path_factory):
    """`make serve` with the tiny preset: its defaults (1 worker, 4 threads, the front) on a loopback port."""
    env = {"GUIDEPOST_PRESET": "tiny", "GUIDEPOST_MODEL_CACHE": str(model_cache)}
    with LocalServer(env, tmp_path_factory.mktemp("front") / "server.log", ready_timeout_s=120) as local:
        yield local


@dataclass
class Slow:
    """One slow connection: what it is, what it has sent, and when (if ever) the server closed it."""

    kind: str
    sock: socket.socket
    sent: int = 0
    closed_at: float | None = None


def open_slow(address: tuple[str, int], kind: str, source: str) -> Slow:
    sock = socket.create_connection(address, timeout=5, source_address=(source, 0))
    if kind == "body":
        sock.sendall(BODY_HEAD)  # complete headers: the request is in; its body will come a byte a second
    sock.setblocking(False)
    return Slow(kind, sock)


def run_slow_clients(conns: list[Slow], stop: threading.Event, started: float) -> None:
    """Every second each open connection sends one byte (body tricklers stop after TRICKLE_S); note server closes."""
    selector = selectors.DefaultSelector()
    for conn in conns:
        selector.register(conn.sock, selectors.EVENT_READ, conn)
    while not stop.is_set() and any(c.closed_at is None for c in conns):
        now = time.monotonic() - started
        for conn in conns:
            if conn.closed_at is None and (conn.kind == "header" and conn.sent < len(HEADER)
                                           or conn.kind == "body" and now < TRICKLE_S):
                try:
                    conn.sock.send(HEADER[conn.sent:conn.sent + 1] if conn.kind == "header" else b"x")
                    conn.sent += 1
                except OSError:
                    pass  # the read below sees the close
        for key, _ in selector.select(timeout=1.0):
            conn = key.data
            try:
                data = conn.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # closed (or reset) by the server
                conn.closed_at = time.monotonic() - started
                selector.unregister(conn.sock)
        stop.wait(max(0.0, 1.0 - ((time.monotonic() - started) % 1.0)))
    selector.close()
    for conn in conns:
        conn.sock.close()


def test_slow_clients_do_not_lock_out_the_others(served, jpeg):
    host, port = urlsplit(served.url).hostname, urlsplit(served.url).port
    started = time.monotonic()
    conns = [open_slow((host, port), kind, ATTACKER) for kind in ["header"] * 16 + ["body"] * 16]
    stop = threading.Event()
    attacker = threading.Thread(target=run_slow_clients, args=(conns, stop, started), daemon=True)
    attacker.start()
    answers = []
    try:
        # The others, while the attack lasts: a probe and a photo, each answered within a few seconds.
        while attacker.is_alive() and time.monotonic() - started < ATTACK_LIMIT_S:
            health = requests.get(f"{served.url}/healthz", timeout=5)
            photo = requests.post(f"{served.url}/process", files={"image": ("p.jpg", jpeg, "image/jpeg")}, timeout=10)
            answers.append((health.status_code, photo.status_code))
            time.sleep(1)  # pace the probes like a phone, not a synchronisation
    finally:
        stop.set()
        attacker.join(timeout=10)
    assert len(answers) >= 5, "the probes ran while the attack did"
    assert set(answers) == {(200, 200)}, answers
    headers = [c for c in conns if c.kind == "header"]
    bodies = [c for c in conns if c.kind == "body"]
    assert all(c.closed_at is not None for c in conns), "the server closed every slow connection"
    assert all(c.closed_at < TRICKLE_S for c in headers), "headers still trickling in are cut at the header timeout"
    assert all(c.closed_at >= TRICKLE_S for c in bodies), "a body at a byte a second is kept (by the front) ..."
    assert max(c.closed_at for c in conns) < ATTACK_LIMIT_S, "... until it stalls"


def get_from(source: str, address: tuple[str, int]) -> bytes:
    """GET /healthz from a given loopback address; the whole answer."""
    with socket.create_connection(address, timeout=10, source_address=(source, 0)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: guidepost\r\nConnection: close\r\n\r\n")
        return sock.makefile("rb").read()


def test_one_address_cannot_take_every_connection(served):
    address = (urlsplit(served.url).hostname, urlsplit(served.url).port)
    limit = 64  # GUIDEPOST_FRONT_MAX_PER_IP's default
    holders = [open_slow(address, "body", GREEDY) for _ in range(limit)]  # uploads in progress
    try:
        answer = get_from(GREEDY, address)
        assert answer.startswith(b"HTTP/1.1 429") and b'"code": "too_many_connections"' in answer, answer
        assert b"Retry-After: 1" in answer
        assert get_from("127.0.0.1", address).startswith(b"HTTP/1.1 200"), "other addresses are served"
    finally:
        for holder in holders:
            holder.sock.close()
    deadline = time.monotonic() + 30
    while not get_from(GREEDY, address).startswith(b"HTTP/1.1 200"):  # until the front has seen them close
        assert time.monotonic() < deadline, "the address is served again once its uploads are gone"


def test_a_chunked_upload_is_buffered_and_keeps_its_connection(served):
    # The front reads a chunked body whole and hands gunicorn a Content-Length: the connection stays usable.
    connection = http.client.HTTPConnection(urlsplit(served.url).hostname, urlsplit(served.url).port, timeout=30)
    try:
        for path, status in [("/nope", 404), ("/process", 415), ("/healthz", 405)]:
            connection.request("POST", path, body=iter([b"x" * 10_000] * 20), encode_chunked=True,
                               headers={"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"})
            response = connection.getresponse()
            assert response.status == status and response.getheader("Connection") == "keep-alive"
            response.read()
        connection.request("GET", "/healthz")  # the same socket: http.client never reconnects by itself
        assert connection.getresponse().status == 200
    finally:
        connection.close()
