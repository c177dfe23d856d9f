"""The command line's habits, run as a real `rag` process (a pseudo-terminal where a terminal matters): --version,
`rag ask -` reading standard input, the answer shown once on a terminal, `rag chat` streaming with line-editing
history, --json with a schema version everywhere (errors too, on stdout, with a non-zero exit), JSON log lines."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
QUESTION = "How long does sourdough bread rise?"
ANSWER_WORDS = "Sourdough bread rises for twelve hours"
SHOWN = "before baking [1]."  # the end of the answer as shown (its source's quote, listed below it, has no marker)


def run(rag_cli, *args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    return subprocess.run([*rag_cli.argv, *map(str, args)], cwd=rag_cli.cwd, env=rag_cli.env, capture_output=True,
                          text=True, timeout=300, check=False, input=stdin)


class Terminal:
    """A `rag` process whose standard input, output and error are a pseudo-terminal."""

    def __init__(self, rag_cli, *args: str | Path) -> None:  # noqa: ANN001
        self.master, slave = pty.openpty()
        env = {**rag_cli.env, "TERM": "xterm", "COLUMNS": "200", "INPUTRC": "/dev/null"}
        self.proc = subprocess.Popen([*rag_cli.argv, *map(str, args)], cwd=rag_cli.cwd, env=env, stdin=slave,
                                     stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.out = b""

    def read_until(self, marker: bytes, timeout: float = 300, count: int = 1) -> bytes:
        deadline = time.monotonic() + timeout
        while self.out.count(marker) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {marker!r} within {timeout}s; output so far:\n{self.out.decode(errors='replace')}")
            ready, _, _ = select.select([self.master], [], [], min(left, 1.0))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    chunk = b""
                if not chunk and self.proc.poll() is not None:
                    raise AssertionError(f"exited before {marker!r}:\n{self.out.decode(errors='replace')}")
                self.out += chunk
        return self.out

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def finish(self, timeout: float = 60) -> str:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            with_rest = self.out
            while True:
                ready, _, _ = select.select([self.master], [], [], 0.2)
                if not ready:
                    break
                try:
                    chunk = os.read(self.master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                with_rest += chunk
            os.close(self.master)
        return with_rest.decode(errors="replace").replace("\r\n", "\n")


def test_version(rag_cli) -> None:  # noqa: ANN001
    from rag import __version__

    done = run(rag_cli, "--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rag, version {__version__}"


def test_ask_reads_the_question_from_standard_input(rag_cli, mixed_index: Path) -> None:  # noqa: ANN001
    done = run(rag_cli, "ask", "-", "--index", mixed_index, "--llm", "extractive", "--json", stdin=QUESTION + "\n")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["schema_version"] == 1 and answer["question"] == QUESTION and ANSWER_WORDS in answer["answer"]


def test_ask_on_a_terminal_shows_the_answer_once(rag_cli, mixed_index: Path) -> None:  # noqa: ANN001
    term = Terminal(rag_cli, "ask", QUESTION, "--index", mixed_index, "--llm", "extractive")
    term.read_until(b"Sources:")
    out = term.finish()
    assert term.proc.returncode == 0, out
    assert out.count(SHOWN) == 1 and ANSWER_WORDS in out, out
    assert "[1] kitchen.html" in out


def test_chat_streams_and_keeps_line_editing_history(rag_cli, mixed_index: Path) -> None:  # noqa: ANN001
    term = Terminal(rag_cli, "chat", "--index", mixed_index, "--llm", "extractive")
    term.read_until(b"you> ")
    term.send(QUESTION.encode() + b"\r")
    term.read_until(b"you> ", count=2)
    term.send(b"\x1b[A\r")  # the up arrow recalls the last question (readline history); Enter asks it again
    term.read_until(b"you> ", count=3)
    term.send(b"\x04")  # Ctrl-D ends the session
    out = term.finish()
    assert term.proc.returncode == 0, out
    assert out.count(f"you> {QUESTION}") == 2, out  # the recalled line is shown as typed
    assert out.count("rag> ") == 2 and out.count(SHOWN) == 2, out


def test_json_everywhere_with_a_schema_version_and_errors_on_stdout(rag_cli, mixed_index: Path,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    keys_index = tmp_path / "keys"
    made = json.loads(run(rag_cli, "keys", "create", "--index", keys_index, "--name", "ci", "--tenant", "A",
                          "--json").stdout)
    assert made["schema_version"] == 1 and made["key"].startswith("rag_")
    listed = json.loads(run(rag_cli, "keys", "list", "--index", keys_index, "--json").stdout)
    assert listed["schema_version"] == 1 and [k["name"] for k in listed["keys"]] == ["ci"]
    revoked = json.loads(run(rag_cli, "keys", "revoke", made["id"], "--index", keys_index, "--json").stdout)
    assert revoked == {"schema_version": 1, "revoked": made["id"]}
    audit = json.loads(run(rag_cli, "audit", "--index", keys_index, "--json").stdout)
    assert audit == {"schema_version": 1, "rows": []}
    for args in ([*("stats", "--index", mixed_index, "--json")], [*("retrieve", "bread", "--index", mixed_index,
                                                                     "--json")]):
        done = run(rag_cli, *args)
        assert done.returncode == 0 and json.loads(done.stdout)["schema_version"] == 1, done.stderr
    failures = [
        ("keys", "revoke", made["id"], "--index", keys_index, "--json"),  # already revoked
        ("ask", "bread?", "--index", tmp_path / "no-index", "--llm", "extractive", "--json"),
        ("retrieve", "bread", "--index", mixed_index, "--filter", "colour=red", "--json"),
        ("ask", "-", "--index", mixed_index, "--json"),  # an empty question on standard input
    ]
    for args in failures:
        done = run(rag_cli, *args, stdin="")
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        error = json.loads(done.stdout)
        assert error["schema_version"] == 1 and error["error"]["message"], (args, error)


def test_log_lines_are_json_on_request(rag_cli, tmp_path: Path) -> None:  # noqa: ANN001
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Fine\n\nA readable note about lighthouses.\n")
    (docs / "bad.docx").write_bytes(b"not a zip")
    done = run(rag_cli, "--log-format", "json", "-v", "ingest", docs, "--index", tmp_path / "index", "--json")
    assert done.returncode == 2
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(x) for x in lines)
    assert any(x["message"].startswith("failed: bad.docx: not a ZIP container") for x in lines), lines
