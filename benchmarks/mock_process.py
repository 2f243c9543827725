"""A flexllm mock server in its own process, so the server's CPU is not the client's."""

from __future__ import annotations

import subprocess
import sys


class MockProcess:
    """``run_mock`` on an ephemeral port in a child process; ``base_url`` ends in ``/v1``."""

    def __init__(self, delay: float, **options: object) -> None:
        extra = "".join(f", {name}={value!r}" for name, value in options.items())
        code = (
            "from flexllm.mock import MockOptions, run_mock\n"
            f"run_mock(MockOptions(port=0, delay={delay!r}{extra}), "
            "echo=lambda s: print(s, flush=True))\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        self.base_url = first.rsplit(" ", 1)[1].strip() + "/v1"

    def kill(self) -> None:
        """Die at once, as a crashed endpoint does."""
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
