"""Table rows in context blocks carry their column names; quotes stay verbatim."""

from __future__ import annotations

from ingest.records import Chunk
from rag import citations as cite
from rag.prompt import render_blocks, select_blocks
from rag.records import Hit
from rag.tables import with_column_names

HISTORY = "A Brief History\n\nYear\tModel\tKey Innovation\n2014\tGANs\tGenerator vs Discriminator game\n" \
          "2020\tVQVAE\tDiscrete image tokens\n\nGANs are a game."


def _count(text: str) -> int:
    return len(text.split())


def _hit(text: str, start: int = 100) -> Hit:
    chunk = Chunk(chunk_id="c1", source="lecture.txt", text=text, start=start, end=start + len(text), text_hash="h",
                  doc_hash="d")
    return Hit(chunk=chunk, score=1.0)


def test_tab_table_rows_name_their_columns():
    out = with_column_names(HISTORY)
    assert out.split("\n") == [
        "A Brief History", "",
        "Year: 2014; Model: GANs; Key Innovation: Generator vs Discriminator game",
        "Year: 2020; Model: VQVAE; Key Innovation: Discrete image tokens",
        "", "GANs are a game."]


def test_table_at_the_top_of_a_block_is_named_only_when_it_opens_the_document():
    rows = "2014\tGANs\tGenerator game\n2020\tVQVAE\tTokens\n2021\tDALL-E\tScale"
    # inside a document the first line may be a data row (the header is in an earlier chunk): left as it is
    assert with_column_names(rows) == rows
    assert with_column_names("Year\tModel\tWhat\n2014\tGANs\tgame") == "Year\tModel\tWhat\n2014\tGANs\tgame"
    assert with_column_names("Year\tModel\tWhat\n2014\tGANs\tgame", opens_document=True) == \
        "Year: 2014; Model: GANs; What: game"


def test_numeric_first_line_is_not_a_header_and_ragged_rows_keep_their_cells():
    text = "Scores\n\n1\t2\n3\t4"
    assert with_column_names(text) == text  # "1", "2" are not column names
    out = with_column_names("Notes\nName\tValue\nalpha\t1\textra\nbeta\t\n")
    assert out.split("\n") == ["Notes", "Name: alpha; Value: 1; extra", "Name: beta", ""]


def test_markdown_table_uses_its_separator_line():
    text = "Limits\n\n| Limit | Default |\n|---|:---:|\n| SQL length | 1000000000 |\n| columns | 2000 |\n\nEnd."
    assert with_column_names(text).split("\n") == [
        "Limits", "", "Limit: SQL length; Default: 1000000000", "Limit: columns; Default: 2000", "", "End."]
    prose = "Use a | b for alternatives.\nNothing else."
    assert with_column_names(prose) == prose  # a pipe without a separator line is not a table


def test_blocks_show_named_rows_and_quote_the_chunk_verbatim():
    (block,) = select_blocks([_hit(HISTORY)], budget=500, max_blocks=5, count=_count)
    assert "Year: 2014; Model: GANs" in block.text and "Year: 2014; Model: GANs" in render_blocks([block])
    assert block.verbatim == HISTORY and block.raw == HISTORY
    sentence = cite.CitedSentence("GANs came in 2014 with the generator versus discriminator game.", (1,))
    (citation,) = cite.citations([sentence], [block])
    assert citation.quote in HISTORY  # never the rewritten row
    plain = select_blocks([_hit("No table here. Just text.")], budget=500, max_blocks=5, count=_count)[0]
    assert plain.raw == "" and plain.verbatim == plain.text == "No table here. Just text."


def test_column_names_count_in_the_budget():
    text = "Intro line.\n" + "\n".join(f"{y}\tModel{y}\tInnovation {y}" for y in ["Year", *range(2000, 2020)])
    budget_words = _count(text) + 10  # the raw chunk fits, the named rows (about twice the words) do not
    (block,) = select_blocks([_hit(text)], budget=budget_words + 24, max_blocks=5, count=_count)
    assert _count(block.text) <= budget_words
    assert block.text == with_column_names(block.raw) and text.startswith(block.raw)
