"""Running the mock: the accept loop and three ways to host it.

* ``await tg.start(serve_mock, options)``: in the caller's task group (asyncio or trio);
* ``with MockServer(...) as url``: in a background thread with its own event loop, so a
  plain (sync) test or script can use it;
* ``run_mock(options)``: in the foreground until Ctrl+C (the ``flexllm mock`` command).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import attrs
from anyio.abc import SocketAttribute

from ._app import MockApp
from ._batches import MockBatches
from ._http import CONTINUE, HttpParseError, make_parser, response_bytes
from ._options import MockOptions, MockStats

__all__ = ("MockServer", "run_mock", "serve_mock")

#: Bytes asked of the socket per read.
_READ_SIZE = 65536
_BAD_REQUEST = response_bytes(
    400, [("content-type", "text/plain")], b"malformed HTTP request\n", keep_alive=False
)
_CONNECTION_ERRORS = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    OSError,
)


def _url_host(host: str) -> str:
    # A wildcard bind is reachable on loopback; IPv6 literals need brackets in a URL.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


class MockServer(anyio.AsyncContextManagerMixin):
    """A mock LLM server speaking the OpenAI, Claude and Gemini dialects on one port.

    ``MockServer(**options)`` takes :class:`MockOptions` fields (or ``MockServer(options)``).
    Unlike the CLI (port 8001), it binds a free port unless ``port=`` is given, so parallel
    tests never collide. Use it as ``with MockServer() as url`` (a background thread) or
    ``async with MockServer() as url`` (the current event loop); ``url`` is the OpenAI base
    URL; ``claude_url`` and ``gemini_url`` are the other dialects' base URLs.
    """

    def __init__(
        self, options: MockOptions | None = None, /, *, backend: str = "asyncio", **overrides: Any
    ) -> None:
        if options is None:
            overrides.setdefault("port", 0)
            options = MockOptions(**overrides)
        elif overrides:
            options = attrs.evolve(options, **overrides)
        self.options = options
        #: Counters of what the server has seen; see :class:`MockStats`.
        self.stats = MockStats()
        #: The batch APIs' jobs and files; ``batches.clock.advance(s)`` moves their time.
        self.batches = MockBatches(options.batch, seed=options.seed)
        #: Event loop of the background thread in ``with`` mode: "asyncio" or "trio".
        self.backend = backend
        self._port: int | None = None
        self._scope: anyio.CancelScope | None = None
        self._portal_cm: contextlib.AbstractContextManager[anyio.from_thread.BlockingPortal] | None = None
        self._portal: anyio.from_thread.BlockingPortal | None = None
        self._future: Future[None] | None = None

    def __repr__(self) -> str:
        where = f"port={self._port}" if self._port is not None else "not running"
        return f"<MockServer {where}>"

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the mock server is not running")
        return self._port

    @property
    def root_url(self) -> str:
        """``http://host:port`` with no path: what the Anthropic SDK takes as base_url."""
        return f"http://{_url_host(self.options.host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ``http://host:port/v1``."""
        return f"{self.root_url}/v1"

    url = base_url

    @property
    def claude_url(self) -> str:
        """Base URL for Claude clients (the server also answers ``/v1/messages`` there)."""
        return self.root_url

    @property
    def gemini_url(self) -> str:
        """Base URL for Gemini clients: ``http://host:port/v1beta``."""
        return f"{self.root_url}/v1beta"

    # -- in the caller's event loop ------------------------------------------------------

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[MockServer] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Bind, report ``self`` through ``task_status``, and serve until cancelled."""
        app = MockApp(self.options, self.stats, batches=self.batches)
        listener = await anyio.create_tcp_listener(
            local_host=self.options.host, local_port=self.options.port, reuse_port=False
        )
        async with listener, anyio.create_task_group() as tg:
            self._port = int(listener.extra(SocketAttribute.local_port))
            self._scope = tg.cancel_scope
            try:
                # "localhost" may bind both IPv4 and IPv6: one accept loop per socket.
                for sub in listener.listeners:
                    tg.start_soon(self._accept_loop, sub, tg, app)
                task_status.started(self)
                await anyio.sleep_forever()
            finally:
                self._scope = None

    async def _accept_loop(
        self,
        listener: anyio.abc.Listener[anyio.abc.SocketStream],
        tg: anyio.abc.TaskGroup,
        app: MockApp,
    ) -> None:
        assert isinstance(listener, anyio.abc.SocketListener)
        while True:
            try:
                stream = await listener.accept()
            except OSError:  # e.g. out of file descriptors: wait, don't die
                await anyio.sleep(0.05)
                continue
            self.stats.connections += 1
            tg.start_soon(_serve_connection, stream, app, self.options.parser)

    @contextlib.asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[str]:
        """Serve in the current event loop for the block; the block's value is the OpenAI URL.

        An error of the block's own leaves as itself, not inside the server's
        ``ExceptionGroup``: it is held while the server's task group closes, then raised.
        """
        held: BaseException | None = None
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(self._serve_in)
                try:
                    yield self.base_url
                except anyio.get_cancelled_exc_class():
                    raise
                except BaseException as exc:
                    held = exc
                finally:
                    tg.cancel_scope.cancel()
        finally:
            self._port = None
        if held is not None:
            raise held

    async def _serve_in(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        await self.serve(task_status=task_status)  # type: ignore[arg-type]

    # -- in a background thread ----------------------------------------------------------

    def start(self) -> str:
        """Start in a background thread with its own event loop; return the OpenAI URL."""
        if self._portal is not None:
            raise RuntimeError("the mock server is already running")
        cm = anyio.from_thread.start_blocking_portal(self.backend, name="flexllm-mock")
        portal = cm.__enter__()
        try:
            self._future, _ = portal.start_task(self.serve)
        except BaseException:
            cm.__exit__(*sys.exc_info())
            raise
        self._portal_cm, self._portal = cm, portal
        return self.base_url

    def stop(self) -> None:
        """Stop serving, close connections and join the thread. Safe to call twice."""
        portal, cm, future = self._portal, self._portal_cm, self._future
        self._portal = self._portal_cm = self._future = None
        if portal is None or cm is None:
            return
        try:
            scope = self._scope
            if scope is not None:
                portal.call(scope.cancel)
            if future is not None:
                with contextlib.suppress(BaseException):
                    future.result()
        finally:
            cm.__exit__(None, None, None)
            self._port = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve_mock(
    options: MockOptions | None = None,
    *,
    task_status: anyio.abc.TaskStatus[MockServer] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve in the caller's task group: ``server = await tg.start(serve_mock, options)``.

    ``server.base_url`` etc. are then valid; cancel the task group's scope to stop.
    """
    server = MockServer(options if options is not None else MockOptions(port=0))
    await server.serve(task_status=task_status)


def run_mock(
    options: MockOptions | None = None,
    *,
    backend: str = "asyncio",
    echo: Callable[[str], None] = print,
) -> None:
    """Serve in the foreground (``flexllm mock``), print the URLs, stop cleanly on Ctrl+C."""
    options = options if options is not None else MockOptions()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            server: MockServer = await tg.start(MockServer(options).serve)
            echo(_banner(server))

    try:
        anyio.run(main, backend=backend)
    except KeyboardInterrupt:
        echo("mock server stopped")


def _banner(server: MockServer) -> str:
    o = server.options
    low, high = o.delay
    delay = f"{low:g}s" if low == high else f"{low:g}-{high:g}s"
    words = o.response_length
    length = f"{words[0]}" if words[0] == words[1] else f"{words[0]}-{words[1]}"
    lines = [
        f"flexllm mock server listening on {server.root_url}",
        f"  OpenAI  base_url: {server.base_url}",
        f"  Claude  base_url: {server.claude_url}",
        f"  Gemini  base_url: {server.gemini_url}",
        f"  delay {delay}, error rate {o.error_rate:g}, {length} words, "
        f"{o.stream_chunks} stream chunks",
    ]
    quotas = [f"{value:g} {name}" for name, value in (
        ("RPM", o.rpm), ("TPM", o.tpm), ("input TPM", o.input_tpm), ("output TPM", o.output_tpm))
        if value is not None]
    if quotas:
        scale = f" (a minute lasts {60 / o.time_scale:g}s)" if o.time_scale != 1 else ""
        lines.append(f"  quota: {', '.join(quotas)}{scale}")
    lines.append("  press Ctrl+C to stop")
    return "\n".join(lines)


async def _serve_connection(stream: anyio.abc.SocketStream, app: MockApp, parser_kind: str) -> None:
    """Read requests off one keep-alive connection and answer them in order."""
    parser = make_parser(parser_kind)
    send = stream.send
    try:
        while True:
            data = await stream.receive(_READ_SIZE)
            try:
                requests = parser.feed(data)
            except HttpParseError:
                await send(_BAD_REQUEST)
                return
            if parser.continue_pending:
                parser.continue_pending = False
                await send(CONTINUE)
            for request in requests:
                if not await app.handle(request, send):
                    return
    except _CONNECTION_ERRORS:
        return  # the client went away; nothing to answer
    except Exception as exc:  # a bug in the mock must not take the server down
        app.stats.internal_errors += 1
        app.stats.last_internal_error = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(*_CONNECTION_ERRORS):
            await send(response_bytes(
                500, [("content-type", "text/plain")],
                f"flexllm mock internal error: {type(exc).__name__}\n".encode(), keep_alive=False,
            ))
    finally:
        with anyio.CancelScope(shield=True), contextlib.suppress(*_CONNECTION_ERRORS):
            await stream.aclose()

