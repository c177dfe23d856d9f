"""What a question asks for (rag.verify.asked): the cases the dev answers showed, and what must still pass."""

from __future__ import annotations

import pytest

from rag.verify.asked import answer_names, asked_for, not_given


@pytest.mark.parametrize(("question", "kind"), [
    ("How many databases can be attached to one connection by default?", "quantity"),
    ("By default, how much lookaside memory does each SQLite database connection get?", "quantity"),
    ("What timeout, in seconds, does R apply by default when reading from a URL with url()?", "quantity"),
    ("In which SQLite release was the SQLITE_ABORT_ROLLBACK error code introduced?", "quantity"),
    ("Which function should I use to create a connection that reads an xz-compressed file?", "name"),
    ("On a Unix system, which environment variable does SQLite consult first?", "name"),
    ("How is a diffusion model trained, according to the lecture?", ""),
    ("How long does the training step of fine-tuning usually take?", ""),  # answered in words: "minutes to hours"
    ("What does the acronym RAG stand for?", ""),
    # both kinds: the first decides (r-data-manual-dev-048's right answer "dbGetRowCount" was dropped as no number)
    ("After sending a query with dbSendQuery, which DBI function tells me how many rows are in the result?", "name"),
    ("How many bytes does the function sqlite3_malloc allocate for the header?", "quantity"),
])
def test_the_kind_of_answer_a_question_asks_for(question: str, kind: str) -> None:
    assert asked_for(question) == kind


def test_a_quantity_needs_a_number_the_question_does_not_give() -> None:
    q = "By default, how much lookaside memory does each SQLite database connection get?"
    assert "gives none" in not_given(q, "The default lookaside memory size set to N [1].")
    assert not_given(q, "Each connection gets 1200 slots of 100 bytes [1].") == ""
    q = "What timeout, in seconds, does R apply by default when reading from a URL with url()?"
    assert "number" in not_given(q, "This can be adjusted using the timeout argument in the url() function [3].")
    assert not_given(q, "60 [2]") == ""
    # a number the question gives is no answer; a version is one
    q = "How many pages does SQLite 3 read per checkpoint?"
    assert not_given(q, "SQLite 3 reads pages during a checkpoint [1].") != ""
    assert not_given("In which release was json_patch added?", "It was added in release 3.22.0 [1].") == ""


def test_a_count_of_one_thing_is_not_answered_by_a_number_of_another() -> None:
    q = "How many epochs does the fine-tuning job in the lecture's OpenAI example train for?"
    assert not_given(q, "The fine-tuning job trains for approximately 1 hour [1].") == (
        "the question counts epochs; the sentence counts hour")
    assert not_given(q, "It trains for 3 epochs [1].") == ""
    assert not_given(q, "3 [1]") == ""
    q = "How many output formats does the sqlite3 command-line shell support, and which one is the default?"
    assert not_given(q, "The sqlite3 command-line shell supports 14 different output formats [5].") == ""
    q = "How many characters long is the random suffix that SQLite appends?"
    assert not_given(q, "The suffix is 16 characters [1].") == ""  # the unit is a word of the question


def test_a_name_needs_a_name_the_question_does_not_give() -> None:
    q = "Which function should I use to create a connection that reads an xz-compressed data file?"
    assert "name" in not_given(q, "Closing the connection writes any remaining output to a final element [5].")
    assert not_given(q, "Use `xzfile()` [2].") == ""
    assert not_given(q, "Function xzfile opens it [2].") == ""
    q = "Which environment variable does SQLite consult first for temporary files on Unix?"
    assert not_given(q, "SQLITE_TMPDIR is consulted first [1].") == ""
    assert not_given(q, "SQLite consults an environment variable first [1].") != ""
    # a lower-case name that ends the sentence after "is" (r-data-manual-dev-040)
    q = "Which function of the reshape2 package converts a data frame from wide to long format?"
    assert not_given(q, "The function in the reshape2 package that converts it to long format is melt [1].") == ""
    assert not_given(q, "The function that does it is `melt()` [1].") == ""
    assert "name" in not_given(q, "This function is used to reshape data frames [1].")
    assert "name" in not_given(q, "The package that does it is reshape2 [1].")  # given by the question


def test_a_question_that_fixes_no_form_passes_anything() -> None:
    assert not_given("How is a diffusion model trained?", "By learning to reverse added noise [1].") == ""
    assert not_given("What does RAG stand for?", "Retrieval-augmented generation [1].") == ""


def test_answer_names_are_the_lower_case_names_a_sentence_gives_for_a_name_question() -> None:
    q = "Which function of the reshape2 package converts a data frame from wide to long format?"
    assert answer_names(q, "The function that converts it is melt [1].") == ["melt"]
    assert answer_names(q, "Use the scan function [2].") == ["scan"]
    assert answer_names(q, "Function xzfile opens it [2].") == ["xzfile"]
    assert answer_names(q, "The package that does it is reshape2 [1].") == []  # the question gives it
    assert answer_names("How many rows are there?", "The function that counts is nrow [1].") == []
