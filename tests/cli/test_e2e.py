"""The real ``flexllm`` process: the README command, stdin, SIGKILL + resume, a chat on a
pseudo-terminal, and ``flexllm mock``. Every wait is bounded."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cli_support import FLEXLLM, subprocess_env

from flexllm import LLMClient
from flexllm.mock import MockServer

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX processes and ptys")


def run(args: list[str], home: Path, cwd: Path, *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEXLLM, *args], cwd=cwd, env=subprocess_env(home), input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    return home, work


def test_readme_command_on_a_fresh_machine(dirs: tuple[Path, Path]) -> None:
    """`flexllm batch examples/questions.jsonl -o results.jsonl --mock`, no config, no key."""
    home, work = dirs
    (work / "examples").mkdir()
    (work / "examples" / "questions.jsonl").write_bytes((ROOT / "examples" / "questions.jsonl").read_bytes())
    args = ["batch", "examples/questions.jsonl", "-o", "results.jsonl", "--mock"]
    first = run(args, home, work)
    assert first.returncode == 0, first.stderr
    assert "20/20 succeeded" in first.stderr
    lines = (work / "results.jsonl").read_text().splitlines()
    assert len(lines) == 20 and all(json.loads(x)["status"] == "success" for x in lines)
    second = run([*args, "--json"], home, work)
    assert second.returncode == 0
    s = json.loads(second.stdout)
    assert (s["sent"], s["resumed"]) == (0, 20)  # re-running sends nothing
    assert (work / "results.jsonl").read_text().splitlines() == lines


def test_ask_with_piped_stdin(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    with MockServer() as url:
        done = run(["ask", "Summarize", "--base-url", url, "-m", "mock-model"], home, work,
                   stdin="long text to summarize\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Mock answer to: long text to summarize")
    assert done.stderr == ""


def test_ask_mock_needs_nothing(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    done = run(["ask", "hi", "--mock"], home, work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Mock answer to: hi")


def test_batch_killed_and_resumed(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    n = 60
    (work / "in.jsonl").write_text("".join(f'{{"prompt": "item {i}", "n": {i}}}\n' for i in range(n)))
    out = work / "in.output.jsonl"
    with MockServer(delay="0.05-0.15") as url:
        args = ["batch", "in.jsonl", "--base-url", url, "-m", "mock-model", "-c", "4", "--no-cache"]
        proc = subprocess.Popen([*FLEXLLM, *args], cwd=work, env=subprocess_env(home),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + TIMEOUT
            while time.monotonic() < deadline:
                if out.exists() and out.read_bytes().count(b"\n") >= 10:
                    break
                time.sleep(0.02)
            else:
                pytest.fail("the batch wrote nothing")
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=TIMEOUT)
        before = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
        assert 10 <= len(before) < n
        done = run([*args, "--json"], home, work)
    assert done.returncode == 0, done.stderr
    s = json.loads(done.stdout)
    assert s["resumed"] == len(before) and s["sent"] == n - len(before) and s["succeeded"] == n
    final = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    indices = sorted(r["index"] for r in final if r["status"] == "success")
    assert indices == list(range(n))  # every item exactly once
    assert all(r["metadata"]["n"] == r["index"] for r in final)


class Pty:
    """A child process on a pseudo-terminal, read with deadlines."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.chdir(cwd)
            os.execve(sys.executable, [sys.executable, *args], env)
        self.seen = ""

    def expect(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"did not see {text!r}; got {self.seen[-400:]!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"process ended before {text!r}; got {self.seen[-400:]!r}")
                self.seen += chunk.decode("utf-8", "replace")
        at = self.seen.index(text) + len(text)
        before, self.seen = self.seen[:at], self.seen[at:]
        return before

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            try:
                select.select([self.fd], [], [], 0.05)
                os.read(self.fd, 4096)
            except OSError:
                time.sleep(0.02)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the chat did not exit")


def test_chat_on_a_terminal(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    with MockServer(chunk_delay=0.2, stream_chunks=40) as slow_url:
        chat = Pty(["-m", "flexllm.cli", "chat", "--base-url", slow_url, "-m", "mock-model"],
                   work, subprocess_env(home, TERM="dumb"))
        chat.expect("Ctrl+D to leave")
        chat.expect("> ")
        chat.send(b"a long question\r")
        chat.expect("Mock answer")
        chat.send(b"\x03")  # Ctrl+C: cancels this answer only
        chat.expect("[answer cancelled]")
        chat.expect("> ")
        chat.send(b"/model\r")
        chat.expect("model: mock-model")
        chat.expect("> ")  # back at the prompt (a Ctrl+C before it would end the process)
        # readline prints the prompt before it takes the terminal; let it settle so the
        # Ctrl+C lands at the prompt, not in between.
        time.sleep(0.5)
        chat.send(b"\x03")  # Ctrl+C at the prompt: the session stays
        chat.expect("(Ctrl+D or /exit to leave)")
        chat.send(b"/exit\r")
        assert chat.wait() == 0
    with MockServer() as url:
        chat = Pty(["-m", "flexllm.cli", "chat", "--base-url", url, "-m", "mock-model", "first"],
                   work, subprocess_env(home, TERM="dumb"))
        chat.expect("Mock answer to: first")
        chat.expect("> ")
        chat.send(b"second\r")
        chat.expect("Mock answer to: second")
        chat.expect("> ")
        chat.send(b"\x04")  # Ctrl+D leaves
        assert chat.wait() == 0


def test_mock_command_serves_until_interrupted(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    proc = subprocess.Popen([*FLEXLLM, "mock", "-p", "0", "-d", "0"], cwd=work,
                            env=subprocess_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        url = None
        while time.monotonic() < deadline and url is None:
            line = proc.stdout.readline()
            if "OpenAI  base_url:" in line:
                url = line.split("base_url:", 1)[1].strip()
        assert url is not None and url.startswith("http://127.0.0.1:")
        with LLMClient(base_url=url, api_key="x", model="m") as client:
            assert client.list_models_sync() == ["mock-model"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_mock_command_enforces_a_quota(dirs: tuple[Path, Path]) -> None:
    home, work = dirs
    proc = subprocess.Popen([*FLEXLLM, "mock", "-p", "0", "--rpm", "1", "--time-scale", "0.5"],
                            cwd=work, env=subprocess_env(home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT
        url, quota = None, None
        while time.monotonic() < deadline and quota is None:
            line = proc.stdout.readline()
            if "OpenAI  base_url:" in line:
                url = line.split("base_url:", 1)[1].strip()
            if "quota:" in line:
                quota = line.strip()
        assert url is not None and quota == "quota: 1 RPM (a minute lasts 120s)"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        first = httpx.post(f"{url}/chat/completions", json=body, timeout=TIMEOUT)
        second = httpx.post(f"{url}/chat/completions", json=body, timeout=TIMEOUT)
        assert first.status_code == 200 and first.headers["x-ratelimit-limit-requests"] == "1"
        assert second.status_code == 429 and second.json()["error"]["code"] == "rate_limit_exceeded"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
