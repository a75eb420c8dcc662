"""The nginx front on its own (no gunicorn behind it): its configuration, its own refusals, its start and stop."""
from __future__ import annotations

import json
import logging
import socket

import pytest

from guidepost.config import load_settings
from guidepost.front import FrontError, NginxFront, find_nginx
from guidepost_tools.loadtest.server import free_port


class Arbiter:
    """What the front's hooks use of gunicorn's arbiter: a log and stop()."""

    def __init__(self):
        self.log = logging.getLogger("test.front")
        self.stopped = []

    def stop(self, graceful=True):
        self.stopped.append(graceful)


def raw(port: int, data: bytes) -> tuple[int, dict, dict]:
    """Send bytes, read one answer (up to its Content-Length): its status, headers and JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < _length(answer):
            chunk = sock.recv(65536)
            assert chunk, f"the connection closed after {answer!r}"
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def _length(answer: bytes) -> int:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    return next((int(line.split(":")[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0)


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """nginx alone on a free port, its upstream socket absent (as while gunicorn is gone); stopped by the hooks."""
    settings = load_settings({"max_image_mb": 1})
    port = free_port()
    folder = tmp_path_factory.mktemp("front") / "run"
    front = NginxFront.for_settings(settings, listen=f"127.0.0.1:{port}", graceful_timeout_s=10, folder=folder)
    arbiter = Arbiter()
    front.on_starting(arbiter)
    front.when_ready(arbiter)
    yield front, port, settings
    arbiter.stop(graceful=True)  # the hook wrapped the arbiter's stop: nginx drains first
    assert front.proc.poll() is not None and arbiter.stopped == [True]
    front.on_exit(arbiter)
    assert not folder.exists(), "the run folder is removed"


def test_the_rendered_configuration_carries_the_servers_limits(tmp_path):
    settings = load_settings({"max_image_mb": 2, "front_max_per_ip": 7})
    front = NginxFront.for_settings(settings, listen="0.0.0.0:8000", graceful_timeout_s=30, folder=tmp_path)
    text = front.render()
    assert f"client_max_body_size  {settings.max_body_bytes};" in text
    assert "limit_conn per_ip 7;" in text and "listen 0.0.0.0:8000" in text
    assert f"proxy_pass http://unix:{front.socket}:;" in text
    off = NginxFront.for_settings(load_settings({"front_max_per_ip": 0}), listen="127.0.0.1:1", graceful_timeout_s=30,
                                  folder=tmp_path)
    assert "limit_conn" not in off.render()


def test_nginx_accepts_the_configuration(tmp_path):
    front = NginxFront.for_settings(load_settings(), listen="127.0.0.1:8000", graceful_timeout_s=30, folder=tmp_path)
    front.write_config(find_nginx())  # runs `nginx -t`; FrontError with nginx's words otherwise


@pytest.mark.parametrize("bind,listen", [("0.0.0.0:5000", "0.0.0.0:5000"), ("127.0.0.1:80", "127.0.0.1:80"),
                                         ("[::]:5000", "[::]:5000"), (":5000", "0.0.0.0:5000"),
                                         ("unix:/tmp/x.sock", "unix:/tmp/x.sock")])
def test_gunicorn_binds_become_nginx_listens(bind, listen, tmp_path):
    assert NginxFront.for_settings(load_settings(), listen=bind, graceful_timeout_s=30, folder=tmp_path).listen == listen


def test_a_bind_the_front_cannot_listen_on_fails_with_its_name(tmp_path):
    with pytest.raises(FrontError, match="GUIDEPOST_BIND='fd://3'"):
        NginxFront.for_settings(load_settings(), listen="fd://3", graceful_timeout_s=30, folder=tmp_path)


def test_no_nginx_says_how_to_get_one_or_turn_the_front_off(monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("os.access", lambda path, mode: False)
    with pytest.raises(FrontError, match="apt-get install nginx.*GUIDEPOST_FRONT=off"):
        find_nginx()


def test_a_server_that_is_gone_is_a_json_503_with_retry_after(front):
    _, port, _ = front
    status, headers, body = raw(port, b"GET /process HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status == 503 and headers["retry-after"] == "5" and headers["content-type"] == "application/json"
    assert body["error"]["code"] == "unavailable" and body["error"]["request_id"] == headers["x-request-id"]


@pytest.mark.parametrize("request_bytes,status,code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "request_header_fields_too_large"),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (b"POST /process HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413, "payload_too_large"),
    (b"TRACE /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
])
def test_what_nginx_refuses_itself_comes_in_the_api_error_shape(front, request_bytes, status, code):
    _, port, settings = front
    got, headers, body = raw(port, request_bytes)
    assert got == status and headers["content-type"] == "application/json"
    assert body["error"]["code"] == code and body["error"]["request_id"] == headers["x-request-id"]
    if status == 413:
        assert body["error"]["message"] == settings.body_too_large_message, "the app's own words"
    if status == 405:
        assert "GET" in headers["allow"] and "TRACE" not in headers["allow"]


@pytest.mark.parametrize("given,kept", [("req-42", True), ('a"b', False), ("x" * 65, False)])
def test_a_sane_request_id_is_kept_and_any_other_replaced(front, given, kept):
    _, port, _ = front
    _, headers, body = raw(port, f"GET / HTTP/1.1\r\nHost: x\r\nX-Request-ID: {given}\r\nConnection: close\r\n\r\n"
                           .encode())
    assert (body["error"]["request_id"] == given) is kept
    assert body["error"]["request_id"] == headers["x-request-id"]
