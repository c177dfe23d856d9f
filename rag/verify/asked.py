"""What a question asks for, and whether a sentence gives it: the lead of an answer must.

A small model that finds no answer in its documents often writes a true sentence next to the question instead
("This can be adjusted using the timeout argument" for "What timeout, in seconds, does R apply by default?";
"The default lookaside memory size set to N." for "how much lookaside memory"). Every word of it is in the cited
block, so the claim checks pass it. Three kinds of question say what their answer must hold, by their words alone:

* a quantity ("how many", "how much", "what is the default size / limit / version / year ...") is answered with a
  number the question does not already give;
* a name ("which function / pragma / environment variable / package ...") with a name, identifier or quoted
  string the question does not already give;
* a count of things ("how many epochs") is not answered by a number of something else ("approximately 1 hour"):
  a number followed by a word that is neither in the question nor the counted thing itself.

`not_given` says why a sentence does not give what its question asks ('' when it does, or when the question is
of none of these kinds). The answer path (rag.drafting) shows no sentence before one that gives it. Chosen on the
dev answers (corpora/labelled/tuning/asked-dev.jsonl and its README), as few words as would catch what they showed.
"""

from __future__ import annotations

import re

from rag.text import STOPWORDS, content_words, strip_markers
from rag.verify.terms import extract_terms, numbers_in, plural_stem, term_present

FRAGMENT_WORDS = 3  # a sentence of at most this many content words is a fragment: its words are its answer
_QUANTITY = re.compile(
    r"\b(?:how (?:many|much|large|big)|(?:what|which) (?:is the |are the )?(?:[\w-]+ )?(?:default |maximum |"
    r"minimum |largest |smallest |exact )?(?:number|size|limit|maximum|minimum|range|percentage|score|timeout|year|"
    r"version|release|port)s?\b)", re.I)
_NAME = re.compile(
    r"\b(?:which|what) (?:\w+ )?(?:function|command|pragma|environment variable|option|argument|parameter|"
    r"package|keyword|operator|method|file ?name|setting|flag|module|extension|macro|error code|class)s?\b", re.I)
_COUNTED = re.compile(r"\bhow many ((?:[a-z][\w-]* ){0,3}?[a-z][\w-]*?)(?= (?:are|is|do|does|did|can|could|will|would|"
                      r"should|must|may|might|has|have|had|per|in|of|for|to|at|on|by|with|from)\b|[?,.]|$)",
                      re.I)
_KINDS = (r"(?:function|command|pragma|variable|option|argument|parameter|package|keyword|operator|method|setting|"
          r"flag|module|extension|macro|class|library|tool)s?")
_NAMED = re.compile(rf"\b{_KINDS}\s+[`'\"]?([\w.:$-]+)|([\w.:$-]+)[`'\"]?\s+{_KINDS}\b", re.I)  # "function scan"
# "The function that converts wide data to long is melt.": a lower-case word that ends the sentence after "is"
_CLOSING_NAME = re.compile(r"\b(?:is|are|called|named)\s+[`'\"]?([a-z_][\w:$-]*(?:\.[\w:$-]+)*(?:\(\))?)[`'\"]?\s*[.!]?\s*$",
                          re.I)
_NUMBER_THEN_WORD = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*\s+([a-z]+)", re.I)


def asked_for(question: str) -> str:
    """"quantity", "name" or "" (a question whose answer's form its words do not fix). When its words ask for
    both, the first does: "Which function tells me how many rows ..." asks for a name."""
    quantity, name = _QUANTITY.search(question), _NAME.search(question)
    if quantity and not (name and name.start() < quantity.start()):
        return "quantity"
    return "name" if name else ""


def not_given(question: str, sentence: str) -> str:
    """Why `sentence` does not give what `question` asks for ('' when it does or the question fixes no form)."""
    text, _ = strip_markers(sentence)
    kind = asked_for(question)
    if not kind:
        return ""
    terms = extract_terms(text)
    q_lower = question.lower()
    if kind == "quantity":
        given = numbers_in(question)
        new = [n for n in terms.numbers if n not in given]
        new += [i for i in terms.identifiers if re.search(r"\d", i) and not term_present(i, q_lower)]
        if not new:
            return "the question asks for a number and the sentence gives none"
        counted = _COUNTED.search(question)
        if counted:
            thing = plural_stem(counted.group(1).split()[-1].lower())
            q_stems = {plural_stem(w) for w in re.findall(r"[a-z]+", q_lower)}
            if thing not in {plural_stem(w) for w in re.findall(r"[a-z]+", text.lower())}:
                for unit in _NUMBER_THEN_WORD.findall(text):
                    if unit.lower() not in STOPWORDS and plural_stem(unit.lower()) not in q_stems:
                        return f"the question counts {counted.group(1)}; the sentence counts {unit}"
        return ""
    new_names = [x for x in (*terms.names, *terms.identifiers, *terms.quoted) if not term_present(x, q_lower)]
    # a lower-case name is no identifier by its looks ("scan", "xzfile"): it counts next to the word for its kind
    # ("function xzfile", "the scan function"), as the word that ends the sentence after "is" ("... is melt."), or
    # as the answer of a fragment of a few words ("scan [2]")
    named = answer_names(question, text)
    words = content_words(text)
    if len(words) <= FRAGMENT_WORDS:
        named += [w for w in words if w.lower() not in STOPWORDS and not term_present(w, q_lower)]
    if not new_names + named:
        return "the question asks for a name and the sentence gives none"
    return ""


def answer_names(question: str, sentence: str) -> list[str]:
    """The lower-case names a sentence gives as the answer to a question asking for a name, that the question does
    not give: next to the word for their kind ("function xzfile", "the scan function") or ending the sentence after
    "is" ("The function that converts wide data to long is melt."). Such a name is the answer, yet no identifier by
    its looks, so the claim checks look for it in the cited block (ClaimChecker.signals) as they do for names."""
    if asked_for(question) != "name":
        return []
    text, _ = strip_markers(sentence)
    q_lower = question.lower()
    named = [w for m in _NAMED.finditer(text) for w in m.groups() if w]
    named += [m.group(1) for m in [_CLOSING_NAME.search(text)] if m]
    named = [w.rstrip(".") for w in named]
    return list(dict.fromkeys(w for w in named if w and w.lower() not in STOPWORDS and not term_present(w, q_lower)))


__all__ = ["answer_names", "asked_for", "not_given"]
