"""Claim verification: is each sentence of an answer supported by the passages it cites?

`checker` holds the ClaimChecker (an LLM judge reading its token probabilities where there is one, local
signals otherwise), `entailment` the questions put to the judge, `terms` the lexical evidence (numbers, names,
identifiers, negation), `asked` what a question asks for (a number, a name) and whether an answer's lead gives it.
"""

from rag.verify.checker import MIN_ENTAILMENT, MIN_LEXICAL, MIN_SIMILARITY, NEGATION_MIN_SIMILARITY, ClaimChecker, Signals
from rag.verify.terms import Terms, extract_terms, missing_terms, numbers_in, polarity_conflict, term_present

__all__ = ["MIN_ENTAILMENT", "MIN_LEXICAL", "MIN_SIMILARITY", "NEGATION_MIN_SIMILARITY", "ClaimChecker", "Signals",
           "Terms", "extract_terms", "missing_terms", "numbers_in", "polarity_conflict", "term_present"]
