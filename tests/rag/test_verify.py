"""The claim checker: catches swapped numbers, entities, negations and opposites; accepts faithful claims."""

from __future__ import annotations

import pytest

from ingest.records import Chunk
from rag.prompt import Block
from rag.records import Hit
from rag.text import split_claims
from rag.verify import (
    ClaimChecker,
    extract_terms,
    missing_terms,
    polarity_conflict,
)

PASSAGE = ("SQLite stores the largest ROWID of an AUTOINCREMENT table in the internal table sqlite_sequence. "
           "The default page size is 4096 bytes. The PRAGMA foreign_keys setting is off by default. "
           "Brian Ripley wrote the R Data Import/Export manual in 2000. "
           "A VACUUM cannot be run inside a transaction. Triggers fire before the row is deleted.")
QUESTION = "How does SQLite handle these things?"

FAITHFUL = [
    "The default page size is 4096 bytes.",
    "SQLite keeps the largest AUTOINCREMENT ROWID in the sqlite_sequence table.",
    "Foreign key enforcement (PRAGMA foreign_keys) is off by default.",
    "The R Data Import/Export manual was written by Brian Ripley in 2000.",
    "VACUUM cannot be run inside a transaction.",
]
UNFAITHFUL = {
    "number": "The default page size is 8192 bytes.",
    "year": "Brian Ripley wrote the R Data Import/Export manual in 2003.",
    "entity": "SQLite stores the largest ROWID of an AUTOINCREMENT table in the internal table sqlite_master.",
    "name": "Douglas Bates wrote the R Data Import/Export manual in 2000.",
    "negation added": "The PRAGMA foreign_keys setting is not off by default.",
    "negation removed": "A VACUUM can be run inside a transaction.",
    "opposite": "Triggers fire after the row is deleted.",
    "off topic": "Rivers flow into the sea near Rotterdam.",
}


def blocks(*texts: str) -> list[Block]:
    out = []
    for i, t in enumerate(texts, start=1):
        chunk = Chunk(chunk_id=f"c{i}", source=f"d{i}.txt", text=t, start=0, end=len(t), text_hash="h",
                      doc_hash="d")
        out.append(Block(i, Hit(chunk, 1.0), t))
    return out


def test_terms_are_extracted_from_claims() -> None:
    t = extract_terms('The read.csv() function, says Ripley, reads "comma separated" files in 2,000 ms via SQLITE_X.')
    assert t.numbers == ("2000",)
    assert set(t.identifiers) == {"read.csv()", "SQLITE_X"}
    assert t.names == ("Ripley",)
    assert t.quoted == ("comma separated",)
    assert extract_terms("It was written in 2000.").names == ()  # the first word is not taken for a name
    assert missing_terms(extract_terms("It holds three items and 1,000 rows."), "3 items, 1000 rows") == []
    assert missing_terms(extract_terms("Set size=1024x1024."), "size 1024") == ["1024x1024"]


def test_polarity_is_compared_word_by_word() -> None:
    assert polarity_conflict("The generator is not trained.", "The generator is trained with the discriminator.")
    assert polarity_conflict("A VACUUM can be run inside a transaction.", "A VACUUM cannot be run inside a "
                             "transaction.")
    # A negated side clause of the passage does not flip the claim.
    assert not polarity_conflict("An SQLITE_CONSTRAINT_DATATYPE error is raised.",
                                 "An SQLITE_CONSTRAINT_DATATYPE error is raised if the value cannot be converted.")
    assert not polarity_conflict("sum() returns NULL but total() returns 0.0.",
                                 "sum() returns NULL if there are no non-NULL input rows; total() returns 0.0.")


def test_split_claims_keeps_citations() -> None:
    def pairs(text: str, n: int) -> list[tuple[str, tuple[int, ...]]]:
        return [(c.text, c.cited) for c in split_claims(text, n)]

    assert pairs("Etna is high [1]. It is in Sicily [2][3]. [1]", 3) == [
        ("Etna is high.", (1,)), ("It is in Sicily.", (2, 3, 1))]
    assert pairs("Bad marker [9].", 2) == [("Bad marker.", ())]
    assert pairs("Elements: [1] - Subject: a garden [1] - Style: photorealistic [2]", 2) == [
        ("Elements:", (1,)), ("- Subject: a garden", (1,)), ("- Style: photorealistic", (2,))]
    # A "." inside a file name is no sentence end (the model's "~/.odbc.ini" was shown as "~/ [1]. odbc.ini")
    assert pairs("The DSN is set up in ~/.odbc.ini under unixODBC [3]. Then R reads ~/.Rprofile [1].", 3) == [
        ("The DSN is set up in ~/.odbc.ini under unixODBC.", (3,)), ("Then R reads ~/.Rprofile.", (1,))]


def test_lexical_fallback_without_embedder() -> None:
    checker = ClaimChecker()
    assert all(v.supported for v in checker.check_answer(QUESTION, " ".join(FAITHFUL[:2]), [PASSAGE]))
    [v] = checker.check_answer(QUESTION, UNFAITHFUL["number"], [PASSAGE])
    assert not v.supported and "8192" in v.reason


@pytest.fixture(scope="module")
def checker(embedder) -> ClaimChecker:
    return ClaimChecker(embedder=embedder)


@pytest.mark.slow
@pytest.mark.parametrize("claim", FAITHFUL)
def test_accepts_faithful_claims(checker: ClaimChecker, claim: str) -> None:
    [v] = checker.check_answer(QUESTION, claim + " [1]", [PASSAGE])
    assert v.supported, v.reason
    assert v.cited == (1,)


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(UNFAITHFUL))
def test_catches_unfaithful_claims(checker: ClaimChecker, kind: str) -> None:
    [v] = checker.check_answer(QUESTION, UNFAITHFUL[kind], [PASSAGE])
    assert not v.supported, f"{kind} not caught: {v}"
    assert v.reason


@pytest.mark.slow
def test_check_sentences_uses_the_cited_blocks_in_order(checker: ClaimChecker) -> None:
    bs = blocks("Etna is about 3,357 metres high.", "The Danube flows through ten countries.")
    verdicts = checker.check_sentences("Facts?", [
        ("The Danube flows through ten countries.", (2,)),
        ("The Danube flows through ten countries.", (1,)),  # cites the wrong block
        ("Etna is about 3,357 metres high.", ()),  # no citation: checked against every block
    ], bs)
    assert [v.supported for v in verdicts] == [True, False, True]
    assert [v.cited for v in verdicts] == [(2,), (1,), ()]


class TableJudge:
    """A yes/no judge (unit seam for the LLM): P(yes) by a word of the statement; records the questions asked."""

    def __init__(self, table: dict[str, float], default: float = 0.9) -> None:
        self.table, self.default = table, default
        self.questions: list[str] = []

    def p_yes(self, prompt) -> float:
        question = prompt.messages[-1].content
        self.questions.append(question)
        asked = question.split("\n\n")[-2:]  # the statement (or question) and the instruction, not the documents
        return next((p for key, p in self.table.items() if any(key in a for a in asked)), self.default)


class FailingJudge:
    def p_yes(self, prompt) -> float:
        raise RuntimeError("the model server is down")


def test_judge_probability_decides_with_the_term_checks() -> None:
    judge = TableJudge({"foreign": 0.2})
    answer = f"{FAITHFUL[0]} {FAITHFUL[2]} {UNFAITHFUL['number']}"
    verdicts = ClaimChecker(judge=judge, min_entailment=0.5).check_answer(QUESTION, answer, [PASSAGE])
    assert [v.supported for v in verdicts] == [True, False, False]  # judge vetoes 2; missing 8192 vetoes 3
    assert "P 0.20" in verdicts[1].reason and "8192" in verdicts[2].reason
    assert verdicts[0].score == 0.9  # the score is the judge's probability
    assert len(judge.questions) == 3 and all("Statement:" in q and "document [1]" not in q for q in judge.questions)
    # The judge reads the documents first, then the statement.
    assert all(q.startswith("Documents:") and PASSAGE[:40] in q for q in judge.questions)


def test_the_judge_reads_only_the_block_a_sentence_cites() -> None:
    """After the answer's whole prompt the judge hardly tells the cited block from its neighbours (dev AUC 0.72
    against 0.885 over the cited block alone): each sentence is judged over its cited blocks only, renumbered."""
    from rag.prompt import blocks_from_texts

    other = "Sourdough bread rises for twelve hours at room temperature before baking."
    blocks = blocks_from_texts([PASSAGE, other, "The harbour was dredged in 1930."])
    judge = TableJudge({})
    checker = ClaimChecker(judge=judge)
    checker.check_sentences(QUESTION, [("Sourdough bread rises for twelve hours [2].", (2,)),
                                       ("Bread rises for twelve hours.", (2, 3))], blocks)
    first, second = judge.questions
    assert other in first and PASSAGE[:40] not in first and "harbour" not in first and "document [1] above" in first
    assert other in second and "harbour" in second and PASSAGE[:40] not in second
    assert "documents [1] and [2] above" in second


def test_the_judge_sees_each_cited_blocks_source_label_as_the_answer_did() -> None:
    """The judge's prompt shows a cited block with the source label the answer's prompt gave it, renumbered from 1, so
    a claim citing the first block opens exactly as the answer's prompt does (a local model copies that part of the
    answer's cache: rag.llm.local); without labels (a labelled set that gives none) the blocks are "passage-N"."""
    from rag.prompt import build_prompt
    from rag.verify.entailment import claim_prompt

    bs = blocks(PASSAGE, "The harbour was dredged in 1930.")
    judge = TableJudge({})
    ClaimChecker(judge=judge).check_sentences(QUESTION, [("The harbour was dredged in 1930 [2].", (2,)),
                                                         (FAITHFUL[0], (1,))], bs)
    second, first = judge.questions
    assert 'document number="1" source="d2.txt"' in second and "d1.txt" not in second
    answer_user = build_prompt(QUESTION, bs).messages[-1].content
    opening = answer_user[: answer_user.index("</document>") + len("</document>")]
    assert first.startswith(opening) and 'source="d1.txt"' in opening
    assert 'source="passage-1"' in claim_prompt("A claim.", [PASSAGE]).messages[-1].content
    with pytest.raises(ValueError, match="1 source label"):
        claim_prompt("A claim.", [PASSAGE, "Another passage."], labels=["a.pdf"])
    judge.questions.clear()
    ClaimChecker(judge=judge).check_answer(QUESTION, "The harbour was dredged in 1930 [2].", [PASSAGE, "The harbour "
                                           "was dredged in 1930."], labels=["a.pdf, page 2", "b.pdf, page 9"])
    assert 'source="b.pdf, page 9"' in judge.questions[0]


def test_a_sentence_that_another_block_supports_better_is_miscited() -> None:
    """Issue 8's miscitations: a true sentence citing a block that does not hold it is flagged, even when the
    judge is fooled (P 0.9); citing the block that holds it passes."""
    from rag.prompt import blocks_from_texts

    other = "Sourdough bread rises for twelve hours at room temperature before baking."
    blocks = blocks_from_texts([PASSAGE, other])
    claim = "Sourdough bread rises for twelve hours before baking."
    checker = ClaimChecker(judge=TableJudge({}), max_miscitation=0.1)
    wrong, right = checker.check_sentences(QUESTION, [(claim, (1,)), (claim, (2,))], blocks)
    assert not wrong.supported and "does not cite" in wrong.reason
    assert right.supported and right.score == 0.9
    off = ClaimChecker(judge=TableJudge({}), max_miscitation=1.0).check_sentences(QUESTION, [(claim, (1,))], blocks)
    assert "does not cite" not in off[0].reason  # 1.0 turns the rule off (its missing "12" still flags it)


def test_answerability_asks_the_judge_after_the_documents() -> None:
    from rag.prompt import blocks_from_texts, build_prompt

    judge = TableJudge({"states the specific answer": 0.3})
    prompt = build_prompt("Who wrote the manual?", blocks_from_texts([PASSAGE]))
    assert ClaimChecker(judge=judge).answerability(prompt) == 0.3
    assert ClaimChecker().answerability(prompt) is None  # no judge: the caller uses the retrieval evidence


def test_a_failing_judge_leaves_the_local_signals_in_charge() -> None:
    verdicts = ClaimChecker(judge=FailingJudge()).check_answer(QUESTION, f"{FAITHFUL[0]} {UNFAITHFUL['number']}",
                                                               [PASSAGE])
    assert [v.supported for v in verdicts] == [True, False]


def test_a_fenced_code_block_is_one_quoted_term_without_its_language_tag() -> None:
    claim = 'For example: ```r read.table("file.dat", fileEncoding="latin1") ``` reads it.'
    assert extract_terms(claim).quoted == ('read.table("file.dat", fileEncoding="latin1")',)
    assert extract_terms("Run ```sql\nSELECT 1;\n``` first.").quoted == ("SELECT 1;",)
    assert extract_terms("Use ```print(x)``` here.").quoted == ("print(x)",)
    block = 'To read it use read.table("file.dat", fileEncoding="latin1") in a UTF-8 locale.'
    assert missing_terms(extract_terms(claim), block) == []


def test_names_given_by_the_question_need_not_be_in_the_cited_block() -> None:
    checker = ClaimChecker()
    block = "The default maximum number of columns in a table is 2000."
    question = "What is the default maximum number of columns allowed in an SQLite table?"
    supported = checker.signals("The default maximum number of columns allowed in an SQLite table is 2000.", [block],
                                question)
    assert supported.missing == ()
    # a name the question does not give, and a number the block does not give, are still missing
    other = checker.signals("PostgreSQL allows 1600 columns.", [block], question)
    assert set(other.missing) >= {"PostgreSQL", "1600"}


MANUAL = ("R Data Import/Export. Version 4.2.2 Patched (2022-11-10). R Core Team. "
          "This manual describes the import and export facilities. Reading data is covered first. "
          "Spreadsheets come next. Databases follow them. "
          "Function download.file is provided to read a file from a Web resource via FTP or HTTP. "
          "It writes the file to a local path. Connections can also read from URLs. "
          "The default setting for SQLITE_MAX_COLUMN is 2000.")


def test_a_number_must_be_stated_near_what_the_claim_says_it_is_about() -> None:
    """A version taken from a title page for "when was download.file introduced" has every term in the block, but
    not together: flagged. The same number near its subject, within two sentences, passes."""
    from rag.verify.terms import unanchored_number

    q = "In which version of R was download.file introduced?"
    made_up = "The download.file function was introduced in R version 4.2.2 Patched (2022-11-10)."
    assert unanchored_number(made_up, q, [MANUAL]) == "4.2.2 is not stated near R, download.file"
    checker = ClaimChecker(judge=TableJudge({}))  # the judge is fooled (P 0.9); the anchoring is not
    [verdict] = checker.check_sentences(q, [(made_up, (1,))], blocks(MANUAL))
    assert not verdict.supported and "4.2.2 is not stated near R, download.file in the cited passages" in verdict.reason
    [lexical] = ClaimChecker().check_sentences(q, [(made_up, (1,))], blocks(MANUAL))  # no judge: the same rule
    assert not lexical.supported and "not stated near" in lexical.reason
    # The window: the subject in the number's sentence, or up to two sentences either side.
    claim = "download.file reads over HTTP since R 3.2."
    base = "Function download.file reads files over FTP or HTTP."
    assert unanchored_number(claim, q, [f"{base} It has done so since R 3.2."]) == ""
    assert unanchored_number(claim, q, [f"R 3.2 came out. One more. {base}"]) == ""  # two sentences away
    assert unanchored_number(claim, q, [f"R 3.2 came out. One more. Two more. {base}"]) == (
        "3.2 is not stated near R, download.file")


def test_anchoring_counts_identifier_parts_and_leaves_questions_without_a_subject_alone() -> None:
    from rag.verify.terms import unanchored_number

    q = "What is the default maximum number of columns allowed in an SQLite table?"
    assert unanchored_number("SQLite allows 2000 columns by default.", q, [MANUAL]) == ""  # SQLITE_MAX_COLUMN
    # An identifier with underscores in the subject matches itself, not only its parts.
    q3 = "What value does the analysis_limit pragma recommend?"
    assert unanchored_number("Use PRAGMA analysis_limit=400.", q3, ["Run PRAGMA analysis_limit=400 first."]) == ""
    # Nothing named in the question and the claim: the rule does not apply (the judge and term checks do).
    assert unanchored_number("The limit is 2000.", "What is the limit?", [MANUAL]) == ""
    # A number the question itself gives needs no anchor.
    q2 = "What happens in R 4.2.2 to download.file?"
    assert unanchored_number("In R 4.2.2 download.file reads files over FTP.", q2, [MANUAL]) == ""


def test_digits_inside_a_name_are_part_of_the_name_not_a_number_to_anchor() -> None:
    """ "gpt-3.5-turbo" is checked whole, as an identifier; its "3.5" is no quantity that must sit near the
    question's subject (a correct answer quoting a model name from a code block was dropped for it)."""
    from rag.verify.terms import unanchored_number

    t = extract_terms("The base model is gpt-3.5-turbo, with utf-8 text, a 1e-5 rate and 3 epochs.")
    assert t.numbers == ("3",)
    assert set(t.identifiers) == {"gpt-3.5-turbo", "utf-8", "1e-5"}
    assert extract_terms("Released 2001-04-31 as SQLite 3.40.1.").numbers == ("04", "2001", "3.40.1", "31")
    block = ("Fine-tuning with OpenAI\n\nUpload the data, then start the job.\n\nclient = OpenAI()\n# one\n# two\n"
             "# three\njob = client.fine_tuning.jobs.create(\n    training_file=file.id,\n"
             '    model="gpt-3.5-turbo"\n)')
    q = "Which OpenAI base model is fine-tuned in the lecture's fine-tuning code?"
    right = "The OpenAI base model fine-tuned in the lecture's code is gpt-3.5-turbo."
    assert unanchored_number(right, q, [block]) == ""
    # The name itself must still be there: another version is missing, not anchored.
    assert missing_terms(extract_terms("The base model is gpt-4-turbo."), block) == ["gpt-4-turbo"]


def test_a_quoted_single_name_is_found_as_a_name_a_quoted_phrase_verbatim() -> None:
    # r-data-manual dev: "... is `unstack()`." over "Function unstack goes in the opposite direction" was dropped
    # as "not in the cited passages"; a quoted name is looked for as a name (call parentheses, plural), a quoted
    # phrase still word for word
    block = "Function unstack goes in the opposite direction, and may be useful for exporting data."
    assert missing_terms(extract_terms("The function that does the opposite is `unstack()`."), block) == []
    assert missing_terms(extract_terms("Use `unstack_wide()`."), block) == ["unstack_wide()", '"unstack_wide()"']
    assert missing_terms(extract_terms('It "goes the opposite way".'), block) == ['"goes the opposite way"']


def test_word_support_counts_a_plural_of_a_short_word() -> None:
    # "BOM stands for Byte Order Mark." over "'BOMs' (Byte Order Marks, ...)": a final "s" is a plural, also
    # below the 5-letter prefix that tolerates other inflections
    from rag.text import word_support

    passage = "‘BOMs’ (Byte Order Marks, https://en.wikipedia.org/wiki/Byte_order_mark) cause problems"
    assert word_support("BOM stands for Byte Order Mark.", passage) == 0.8  # all but "stands"
    assert word_support("Cats nap.", "a dog naps") == 0.5  # "naps" for "nap"; "cats" is not "dog"
    assert word_support("Cats nap.", "a cat napped") == 0.5  # "napped" is no plural of a word under 5 letters


def test_without_attribution_leaves_the_claim_a_sentence_attributes_to_the_documents() -> None:
    from rag.text import without_attribution

    assert without_attribution("The manual says that the file tool comes from Rtools on Windows.") == \
        "the file tool comes from Rtools on Windows."
    assert without_attribution("According to the SQLite FAQ, SQLite has ECCN EAR99.") == "SQLite has ECCN EAR99."
    assert without_attribution("Document [2] states that the limit is 10 pages.") == "the limit is 10 pages."
    assert without_attribution("The R manual notes that read.table is slow.") == "read.table is slow."  # kept as is
    # Not an attribution to the documents, or a verb whose object is no claim: unchanged.
    for sentence in ("According to Smith, the value is 3.", "The lecture recommends a learning rate of 1e-5.",
                     "The page size states the limit.", "The text says that it works."):
        assert without_attribution(sentence) == sentence


def test_the_checks_read_the_claim_not_its_attribution_to_the_documents() -> None:
    """A 1.5B judge read "The manual says that X" as a claim about the manual (dev: P 0.31 -> 0.47 without the
    frame for r-data-manual-dev-028, a right answer that was dropped): the judge is asked about X."""
    judge = TableJudge({})
    checker = ClaimChecker(judge=judge, min_entailment=0.5)
    sentence = "The manual says that the default page size is 4096 bytes."
    (verdict,) = checker.check_sentences(QUESTION, [(sentence, (1,))], blocks(PASSAGE))
    assert "Statement: the default page size is 4096 bytes." in judge.questions[0]
    assert verdict.claim == sentence and verdict.supported


def test_an_empty_string_literal_does_not_open_a_quoted_string() -> None:
    """r-data-manual-dev-042: 'changes to "" when sep = "\\n"' was read as the quoted string ' when sep = ', which no
    block holds, and a right answer was dropped."""
    terms = extract_terms('The default for the quoting argument changes to "" when sep = "\\n" is specified.')
    assert terms.quoted == ("\\n",)


def test_a_lower_case_name_given_as_the_answer_must_be_in_the_cited_block() -> None:
    """r-data-manual-dev-040 (unanswerable: the manual names the reshape2 package, not its functions): "... is melt"
    names no identifier by its looks, and the judge passed it; the name given as the answer must be in the block."""
    question = "Which function in the reshape2 package converts a data frame from wide to long format?"
    block = ("Some people prefer the packages reshape, reshape2 and plyr. Function stack converts wide data to the "
             "long format, as does reshape with direction long.")
    checker = ClaimChecker()
    melt = checker.signals("The function in the reshape2 package that does it is melt.", [block], question)
    assert melt.missing == ("melt",)
    assert "melt" in checker.decide(melt)[1][0]
    stack = checker.signals("The function that converts wide data to the long format is stack.", [block], question)
    assert stack.missing == ()
    # only for a question asking for a name: elsewhere a closing word is just a word
    other = checker.signals("The long format is preferred.", [block], "Why is the long format used?")
    assert other.missing == ()
