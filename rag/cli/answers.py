"""rag ask and rag chat: cited answers on the terminal."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from rag.cli.common import Ctx, echo_json, errors, fail, index_option, llm_options, llm_overrides, print_sources


@click.command()
@click.argument("question")
@index_option
@llm_options
@click.option("--json", "as_json", is_flag=True, help="Print the Answer as one JSON object.")
@click.pass_obj
def ask(obj: Ctx, question: str, index_dir: Path | None, llm: str | None, model: str | None, base_url: str | None,
        filters: tuple[str, ...], verify: bool | None, as_json: bool) -> None:
    """Answer a question from the indexed documents, with numbered sources. QUESTION '-' reads standard input."""
    from rag.api import open_pipeline
    from rag.records import Answer

    if question == "-":
        question = sys.stdin.read().strip()
    if not question.strip():
        fail("the question is empty", as_json)
    with errors(as_json):
        cfg = llm_overrides(llm, model, base_url, obj.config)
        with open_pipeline(index_dir, cfg) as r:
            if as_json:
                echo_json(r.ask(question, filters=list(filters), verify=verify).to_dict())
                return
            tty = sys.stdout.isatty()
            answer = None
            streamed: list[str] = []
            for item in r.stream(question, filters=list(filters), verify=verify):
                if isinstance(item, Answer):
                    answer = item
                elif tty:  # on a terminal the answer appears as it is written
                    click.echo(item, nl=False)
                    streamed.append(item)
            assert answer is not None
            if not streamed:
                click.echo(answer.text)
            elif "".join(streamed).strip() != answer.text.strip():
                # The final answer differs from what was shown (a refusal): say so rather than print twice.
                click.echo("\n" + answer.text)
            else:
                click.echo()
            print_sources(answer)


@click.command()
@index_option
@llm_options
@click.pass_obj
def chat(obj: Ctx, index_dir: Path | None, llm: str | None, model: str | None, base_url: str | None,
         filters: tuple[str, ...], verify: bool | None) -> None:
    """An interactive session: answers stream as they are written, follow-up questions use the conversation,
    arrow keys edit and recall earlier questions. An empty line or Ctrl-D ends."""
    from rag.api import open_pipeline
    from rag.records import Answer

    with contextlib.suppress(ImportError):  # not on every platform
        import readline  # noqa: F401 - line editing and history for input()
    history: list[tuple[str, str]] = []
    with errors():
        cfg = llm_overrides(llm, model, base_url, obj.config)
        with open_pipeline(index_dir, cfg) as r:
            while True:
                try:
                    question = input("you> ").strip()
                except EOFError:
                    break
                if not question:
                    break
                click.echo("rag> ", nl=False)
                answer = None
                shown: list[str] = []
                for item in r.stream(question, history=history, filters=list(filters), verify=verify):
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        click.echo(item, nl=False)
                        shown.append(item)
                assert answer is not None
                if "".join(shown).strip() != answer.text.strip():
                    click.echo(("\n" if shown else "") + answer.text, nl=False)
                click.echo()
                print_sources(answer)
                history.append((question, answer.text))
