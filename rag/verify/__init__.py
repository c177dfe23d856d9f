"""Claim verification: is each sentence of an answer supported by the passages it cites?

`checker` holds the ClaimChecker (local signals plus an optional LLM judge), `terms` the lexical evidence
(numbers, names, identifiers, negation), `judge` the LLM judge's prompt and reply parser.
"""

from rag.verify.checker import MIN_LEXICAL, MIN_SIMILARITY, NEGATION_MIN_SIMILARITY, ClaimChecker, Signals
from rag.verify.judge import parse_judge_reply
from rag.verify.terms import Terms, extract_terms, missing_terms, numbers_in, polarity_conflict, term_present

__all__ = ["MIN_LEXICAL", "MIN_SIMILARITY", "NEGATION_MIN_SIMILARITY", "ClaimChecker", "Signals", "Terms",
           "extract_terms", "missing_terms", "numbers_in", "parse_judge_reply", "polarity_conflict", "term_present"]
