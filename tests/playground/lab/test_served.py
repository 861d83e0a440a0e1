"""ServedConnections: every accepted connection is known at once and its socket closed,
even when its server closes before the connection's task ever ran."""

from __future__ import annotations

import asyncio
import socket

from playground.lab.served import ServedConnections


async def test_a_connection_whose_task_never_ran_is_closed_with_its_server() -> None:
    ran: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ran.append("ran")

    served = ServedConnections(handler, "test server")
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)
    client_reader, client_writer = await asyncio.open_connection(sock=theirs)
    served.accept(reader, writer)  # as start_server would call it
    (task,) = served.tasks
    # No await between the two: the server stops before the task takes its first step.
    await served.close()
    assert ran == [] and task.cancelled()
    assert writer.is_closing() and served.tasks == {}
    assert await client_reader.read() == b""  # the client sees the connection end
    client_writer.close()
    await client_writer.wait_closed()


async def test_a_handler_that_returns_has_its_socket_closed() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")

    served = ServedConnections(handler, "test server")
    server = await asyncio.start_server(served.accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await reader.read() == b"hello"  # then EOF: closed without the handler's help
    assert served.tasks == {}
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
