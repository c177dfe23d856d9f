"""The README's recipes, run as written: `rag ask --base-url` against a real OpenAI-compatible server (llama.cpp's,
via llama-cpp-python with the bundled SmolLM2: it speaks the protocol Ollama and vLLM speak, so it stands in for
all three), keyless on a non-loopback address, and the OpenAI recipe with its key from the environment."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from recording_llm import RecordingLLM

from eval.llm_server import llama_server as run_llama_server
from rag.llm.models import resolve_gguf

pytestmark = [pytest.mark.slow, pytest.mark.llm]
README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "### Recipes: Ollama, vLLM, llama.cpp's server, OpenAI"
LOCAL_URL = re.compile(r"http://localhost:\d+/v1")


def recipes() -> dict[str, list[str]]:
    """{server: the `rag ask` command of its recipe} from the README's recipes block (the comment names it)."""
    text = README.read_text()
    block = text[text.index(HEADING):].split("```bash\n", 1)[1].split("```", 1)[0]
    out: dict[str, list[str]] = {}
    name = ""
    for line in block.splitlines():
        if line.startswith("# "):
            name = line[2:].split(":")[0].strip()
        elif line.startswith("rag ask "):
            out[name] = shlex.split(line)
    assert set(out) == {"llama.cpp's server", "Ollama", "vLLM", "OpenAI"}, out
    return out


def outward_address() -> str:
    """This machine's address on its network (not loopback): keyless servers are rarely on localhost only."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the interface with a route
        address = s.getsockname()[0]
    assert not address.startswith("127."), address
    return address


def run(rag_cli, argv: list[str], index: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:  # noqa: ANN001
    cmd = [*rag_cli.argv, *argv[1:], "--index", str(index), "--json"]
    return subprocess.run(cmd, cwd=rag_cli.cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def keyless_env(rag_cli) -> dict[str, str]:  # noqa: ANN001
    return {k: v for k, v in rag_cli.env.items() if k not in ("OPENAI_API_KEY", "RAG_LLM__OPENAI__API_KEY_ENV")}


@pytest.fixture(scope="module")
def llama_cpp(tmp_path_factory) -> str:  # noqa: ANN001
    log = tmp_path_factory.mktemp("recipes") / "llama-server.log"
    with run_llama_server(resolve_gguf("smollm2-135m"), n_ctx=2048, log_file=log, timeout=180,
                          alias="smollm2") as base_url:
        yield base_url


@pytest.mark.parametrize("server", ["llama.cpp's server", "Ollama", "vLLM"])
def test_local_server_recipes_work_without_a_key(server: str, llama_cpp: str, rag_cli, lecture_index: Path) -> None:  # noqa: ANN001
    argv = [LOCAL_URL.sub(llama_cpp, a) for a in recipes()[server]]
    small = {"RAG_LLM__OPENAI__MAX_TOKENS": "40", "RAG_LLM__OPENAI__TIMEOUT": "600", "RAG_ANSWER__CONTEXT_TOKENS": "300",
             "RAG_ANSWER__MAX_BLOCKS": "2"}  # a short prompt: the tiny model on a shared 2-core machine is slow
    done = run(rag_cli, argv, lecture_index, {**keyless_env(rag_cli), **small})
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    model = argv[argv.index("--model") + 1]
    assert answer["model"] == model and answer["question"] == "What is retrieval-augmented generation?"
    assert answer["refused"] or answer["usage"]["completion_tokens"] > 0  # the server answered (or rag refused)
    assert answer["evidence"]["answerability"] is not None  # the yes/no check went to the server too


def test_keyless_server_on_another_host_gets_no_key(rag_cli, lecture_index: Path) -> None:  # noqa: ANN001
    address = outward_address()
    with RecordingLLM("Retrieval-augmented generation retrieves passages before generating [1].", host="0.0.0.0") as llm:
        argv = [LOCAL_URL.sub(llm.url(address), a) for a in recipes()["Ollama"]]
        done = run(rag_cli, argv, lecture_index, {**keyless_env(rag_cli), "OPENAI_API_KEY": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert llm.chats() and all("authorization" not in headers for headers, _ in llm.requests)
    assert {body["model"] for _, body in llm.chats()} == {"llama3.2"}


def test_openai_recipe_sends_the_key_from_the_environment(rag_cli, lecture_index: Path) -> None:  # noqa: ANN001
    argv = recipes()["OpenAI"]
    env = keyless_env(rag_cli)
    refused = run(rag_cli, argv, lecture_index, env)  # no key: refused before any request, naming the variable
    assert refused.returncode == 1 and "OPENAI_API_KEY" in json.loads(refused.stdout)["error"]["message"]
    with RecordingLLM("Retrieval-augmented generation retrieves passages before generating [1].") as llm:
        # The recording server stands in for api.openai.com (the one setting the recipe does not show).
        env = {**env, "OPENAI_API_KEY": "sk-recipe-test", "RAG_LLM__OPENAI__BASE_URL": llm.base_url}
        done = run(rag_cli, argv, lecture_index, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert llm.chats() and all(h.get("authorization") == "Bearer sk-recipe-test" for h, _ in llm.requests)
    assert json.loads(done.stdout)["model"] == "gpt-4o-mini"
