"""Table rows in context blocks carry their column names; quotes stay verbatim; checks still see one row at a time."""

from __future__ import annotations

from ingest.records import Chunk
from rag import citations as cite
from rag.prompt import fit_text, render_blocks, select_blocks
from rag.records import Hit
from rag.tables import with_column_names
from rag.text import split_sentences
from rag.verify import ClaimChecker

HISTORY = "A Brief History\n\nYear\tModel\tKey Innovation\n2014\tGANs\tGenerator vs Discriminator game\n" \
          "2020\tVQVAE\tDiscrete image tokens\n2021\tDALL-E\tText-to-image at scale\n\nGANs are a game."
NAMED = ["Year: 2014; Model: GANs; Key Innovation: Generator vs Discriminator game",
         "Year: 2020; Model: VQVAE; Key Innovation: Discrete image tokens",
         "Year: 2021; Model: DALL-E; Key Innovation: Text-to-image at scale"]


def _count(text: str) -> int:
    return len(text.split())


def _hit(text: str, start: int = 100) -> Hit:
    chunk = Chunk(chunk_id="c1", source="lecture.txt", text=text, start=start, end=start + len(text), text_hash="h",
                  doc_hash="d")
    return Hit(chunk=chunk, score=1.0)


def test_tab_table_rows_name_their_columns_one_sentence_per_row():
    out = with_column_names(HISTORY)
    assert out.split("\n") == ["A Brief History", "", *NAMED, "", "GANs are a game."]
    assert split_sentences(out) == ["A Brief History", *NAMED, "GANs are a game."]


def test_wrong_row_value_is_still_caught_near_its_subject():
    # anchoring looks within two sentences of the claim's subject: a table flattened into one sentence would put
    # every value "near" every model; each named row stays a sentence of its own
    years = ["2014\tGANs\tgame", "2020\tVQVAE\ttokens", "2021\tDALL-E\tscale", "2022\tStable Diffusion\topen",
             "2023\tMidjourney v5\tquality", "2024\tFlux\tbetter"]
    named = with_column_names("A Brief History\nYear\tModel\tKey Innovation\n" + "\n".join(years))
    checker = ClaimChecker()
    assert "Flux" in checker.signals("The history dates Flux to 2014.", [named], "In which year did Flux appear?").unanchored
    assert not checker.signals("The history dates Flux to 2024.", [named], "In which year did Flux appear?").unanchored


def test_table_at_the_top_of_a_block_is_named_only_when_it_opens_the_document():
    rows = "2014\tGANs\tGenerator game\n2020\tVQVAE\tTokens\n2021\tDALL-E\tScale"
    # inside a document the first line may be a data row (the header is in an earlier chunk): left as it is
    assert with_column_names(rows) == rows
    assert with_column_names("Year\tModel\tWhat\n2014\tGANs\tgame") == "Year\tModel\tWhat\n2014\tGANs\tgame"
    assert with_column_names("Year\tModel\tWhat\n2014\tGANs\tgame", opens_document=True) == \
        "Year: 2014; Model: GANs; What: game"


def test_lines_that_are_not_column_names_or_not_a_whole_table_are_left_alone():
    for text in ["Scores\n\n1\t2\n3\t4",  # numbers are not column names
                 "Notes\nName\tValue\nalpha\t1\textra\nbeta\t2",  # a ragged row: the columns are unknown
                 "Code\nint x;\t/* count */\nint y;\t/* size */",  # code with tabs
                 "Build\nall:\tmain.o util.o\nclean:\trm -f main.o",  # a Makefile
                 "Intro\n```\nName\tValue\nalpha\t1\n```",  # inside a fence
                 "Intro\nThe first column holds the year\tand this one the model\n2014\tGANs"]:  # a sentence
        assert with_column_names(text) == text, text
    assert with_column_names("Slide\nScenario\tUse...\nGeneral task\tPrompt engineering") == \
        "Slide\nScenario: General task; Use...: Prompt engineering"


def test_markdown_table_uses_its_separator_line():
    text = "Limits\n\n| Limit | Default |\n|---|:---:|\n| SQL length | 1000000000 |\n| columns | 2000 |\n\nEnd."
    assert with_column_names(text).split("\n") == [
        "Limits", "", "Limit: SQL length; Default: 1000000000", "Limit: columns; Default: 2000", "", "End."]
    # the separator proves the header: an empty or numeric column name is kept as is; short separators count
    assert with_column_names("| | 2019 | 2020 |\n|-|-:|-|\n| sales | 3 | 4 |") == "sales; 2019: 3; 2020: 4"
    for text in ["Use a | b for alternatives.\nNothing else.",  # a pipe without a separator line is not a table
                 "| Op | Meaning |\n|---|---|\n| `||` | concatenate |"]:  # a pipe inside a cell: columns unknown
        assert with_column_names(text) == text


def test_blocks_show_named_rows_and_quote_the_chunk_verbatim():
    (block,) = select_blocks([_hit(HISTORY)], budget=500, max_blocks=5, count=_count)
    assert NAMED[0] in block.text and NAMED[0] in render_blocks([block])
    assert block.verbatim == HISTORY and block.raw == HISTORY
    sentence = cite.CitedSentence("GANs came in 2014 with the generator versus discriminator game.", (1,))
    (citation,) = cite.citations([sentence], [block])
    assert citation.quote in HISTORY  # never the rewritten row
    plain = select_blocks([_hit("No table here. Just text.")], budget=500, max_blocks=5, count=_count)[0]
    assert plain.raw == "" and plain.verbatim == plain.text == "No table here. Just text."


def test_column_names_count_in_the_budget_and_as_many_rows_as_fit_are_shown():
    text = "Intro line.\n" + "\n".join(f"{y}\tModel{y}\tInnovation {y}" for y in ["Year", *range(2000, 2020)])
    budget_words = _count(text) + 10  # the raw chunk fits, the named rows (about twice the words) do not
    (block,) = select_blocks([_hit(text)], budget=budget_words + 24, max_blocks=5, count=_count)
    assert _count(block.text) <= budget_words
    assert block.text == with_column_names(block.raw) and text.startswith(block.raw)
    one_more = text[:text.index("\n", len(block.raw) + 1)] if "\n" in text[len(block.raw) + 1:] else text
    assert _count(with_column_names(one_more)) > budget_words  # the next row would not have fitted


def test_a_cut_block_keeps_its_line_breaks():
    text = "First line.\n- item one\n- item two\n\nLast paragraph is long enough to be cut off here."
    cut = fit_text(text, _count(text) - 3, _count)
    assert cut == "First line.\n- item one\n- item two"


def test_pipe_rows_with_an_empty_first_or_last_cell_keep_their_columns():
    # an HTML table as the loader writes it: a header whose first cell is empty, a row whose last cell is empty;
    # outer pipes are stripped only in pairs (`| a | b |`), so neither row loses a column
    table = " | SQLite | Oracle\n--- | --- | ---\nnulls add to null | Yes | \nCASE null is 0 | Yes | Yes"
    assert with_column_names(table).split("\n") == [
        "nulls add to null; SQLite: Yes", "CASE null is 0; SQLite: Yes; Oracle: Yes"]
    assert with_column_names("| a | b |\n|---|---|\n| 1 | 2 |") == "a: 1; b: 2"
