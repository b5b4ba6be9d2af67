# The journey load generator's stand-in for nginx's keep-alive pool to gunicorn (bench/journey_client.py,
# Upstream): what the app is measured behind must behave as deploy/nginx-wxsurvey.conf's pool does.
import asyncio
from concurrent.futures import ThreadPoolExecutor

from bench.journey_client import Browser, Upstream


class Server:
    """A keep-alive HTTP server on loopback that answers every request with 200 and counts its
    connections: opened, and closed by the client."""

    def __init__(self) -> None:
        self.opened = self.closed = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.opened += 1
        self.writers.append(writer)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed += 1
            writer.close()


def run(scenario) -> None:
    """The scenario against a fresh server, on an event loop in a thread of its own (a browser test
    before it in the same process leaves Playwright's loop running on the main thread)."""
    with ThreadPoolExecutor(1) as thread:
        thread.submit(lambda: asyncio.run(_with_server(scenario))).result(timeout=30)


async def _with_server(scenario) -> None:
    server = Server()
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    async with listening:
        await scenario(server, f"http://127.0.0.1:{port}/", Upstream(("127.0.0.1", port), idle=2))


async def _until(condition) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.01)


def test_citizens_one_after_another_share_one_pooled_connection():
    async def scenario(server, url, upstream):
        for _ in range(5):
            assert (await Browser(5, upstream).request("GET", url))[0] == 200
        assert server.opened == 1 and len(upstream.cache) == 1

    run(scenario)


def test_a_burst_opens_connections_and_the_pool_keeps_only_its_idle_number():
    async def scenario(server, url, upstream):
        answers = await asyncio.gather(*(Browser(5, upstream).request("GET", url) for _ in range(5)))
        assert [status for status, _, _ in answers] == [200] * 5
        assert server.opened == 5 and len(upstream.cache) == 2
        await _until(lambda: server.closed == 3)  # the oldest beyond the idle two, closed

    run(scenario)


def test_a_pooled_connection_the_server_closed_is_reopened_and_the_request_sent_again():
    async def scenario(server, url, upstream):
        browser = Browser(5, upstream)
        assert (await browser.request("GET", url))[0] == 200
        server.writers[0].close()  # gunicorn's keep-alive timeout on the idle connection
        await _until(lambda: upstream.cache[0][0].at_eof())
        assert (await browser.request("GET", url))[0] == 200
        assert server.opened == 2 and browser.reconnects == 1

    run(scenario)
