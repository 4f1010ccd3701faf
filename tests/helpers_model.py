"""A scripted OpenAI-compatible model server on loopback, for tests that drive the real openai
client: the chat-completion answer shape and the server's start and stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from closedloop.sandbox.server import bind_socket


def completion(message: dict[str, Any], model: str) -> dict[str, Any]:
    """One chat-completion answer carrying ``message`` (as the OpenAI API returns it)."""
    return {
        "id": "cmpl",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yields its OpenAI base URL (``.../v1``)."""
    sock = bind_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
