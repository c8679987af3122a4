"""Slow clients (docs/SECURITY.md section 7; issue 19, item 5): 1,500 connections with
unfinished headers stayed open forever and, with a low file limit, starved every other
request. A real ``ccx node serve`` process now closes a connection whose headers (or
body) don't arrive in time, and sheds new requests with 503 past its connection limit
instead of running out of descriptors."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.durability.harness import CityNode, start_node

SLOW = 40  # connections that never finish their request
LIMIT = 30  # the node's connection limit (CCX_MAX_CONNECTIONS)
DEADLINE = 1.5  # seconds for headers, and for a body after its headers


@pytest.fixture
def node(tmp_path: Path) -> Iterator[CityNode]:
    started = start_node(
        tmp_path,
        None,
        env={
            "CCX_HEADER_TIMEOUT": str(DEADLINE),
            "CCX_BODY_TIMEOUT": str(DEADLINE),
            "CCX_MAX_CONNECTIONS": str(LIMIT),
        },
    )
    try:
        yield started
    finally:
        started.process.stop()


def open_slow(port: int, first_bytes: bytes) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(first_bytes)
    return connection


def closed_by_the_server(connection: socket.socket, within: float) -> bool:
    connection.settimeout(within)
    try:
        while data := connection.recv(4096):
            if b"HTTP/1.1" in data:  # an answer is not a close; keep reading to the end
                continue
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_unfinished_headers_are_cut_off_and_load_is_shed_meanwhile(node: CityNode) -> None:
    port = node.process.port
    slow = [open_slow(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(SLOW)]
    try:
        time.sleep(0.2)  # let the server accept them all
        started = time.monotonic()
        shed = httpx.get(f"{node.process.url}/healthz", timeout=5)
        assert shed.status_code == 503  # past the limit: answered at once, not queued
        assert time.monotonic() - started < 2
        assert all(closed_by_the_server(c, within=DEADLINE + 5) for c in slow)
    finally:
        for connection in slow:
            with contextlib.suppress(OSError):
                connection.close()
    assert httpx.get(f"{node.process.url}/healthz", timeout=5).status_code == 200


def test_a_body_that_never_ends_is_cut_off(node: CityNode) -> None:
    head = (
        b"POST /v1/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"records": ['
    )
    connection = open_slow(node.process.port, head)
    try:
        assert closed_by_the_server(connection, within=DEADLINE + 5)
    finally:
        connection.close()


def test_an_idle_connection_is_closed(node: CityNode) -> None:
    connection = socket.create_connection(("127.0.0.1", node.process.port), timeout=10)
    try:
        assert closed_by_the_server(connection, within=DEADLINE + 5)
    finally:
        connection.close()
