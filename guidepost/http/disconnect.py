"""Whether the client of a request has gone away, from the socket gunicorn hands the app (no read, no wait)."""
from __future__ import annotations

import socket
from collections.abc import Callable


def client_gone(environ: dict) -> Callable[[], bool] | None:
    """A check the generation polls every token; None where the server gives no socket (the Flask test client)."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        return None

    def gone() -> bool:
        try:
            # An orderly close reads as b"" without consuming anything; a live client has nothing to read.
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:  # reset, or the socket is already closed
            return True

    return gone
