"""Lexical evidence about a claim: the numbers, names, identifiers and quoted strings it asserts, whether they
occur in a passage, and whether the claim's polarity (a negation, an opposite word) differs from the passage's."""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag.text import STOPWORDS, content_words, split_sentences, word_support

NEGATION_SCOPE = 5  # tokens after a negation word (in its clause) that it negates; chosen on dev
# Sentences either side of a passage sentence holding a claim's number that may name what the number is about.
# Chosen on the dev answers read by people (corpora/labelled/dev.jsonl and shipped/dev-*.jsonl): of 53 labelled
# sentences the rule applies to, window 2 flags 17 of 20 unsupported and 0 of 33 supported (window 1: 17 and 1).
ANCHOR_WINDOW = 2
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?!\w)%?")
_WORD = re.compile(r"\w+(?:[.'’-]\w+)*(?:\(\))?")
_FENCE = re.compile(r"```(?:[A-Za-z][\w+-]{0,11}(?=\s))?([^`]{1,200})```")
# A double quote right after another is the end of an empty string (`""`), never the start of a quoted one.
_QUOTED = re.compile(r"(?<!\")\"([^\"]{2,60})\"|“([^”]{2,60})”|`([^`]{1,60})`|(?<!\w)'([^']{2,60})'(?!\w)")
_CARDINALS = {
    "zero": "0", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000",
}
# Words that may stand for a number in a passage, but mean other things too often to be checked in a claim.
_CONTEXT_NUMBER_WORDS = {**_CARDINALS, "one": "1", "first": "1", "second": "2", "third": "3", "once": "1",
                         "twice": "2", "double": "2", "single": "1", "half": "0.5"}
# Words ending in "n't" count as negations too.
_NEGATIONS = frozenset({"not", "no", "never", "cannot", "cant", "none", "neither", "nor", "nothing", "nobody",
                        "nowhere", "without", "unable"})
# Words that start a new clause, ending the scope of a negation before them.
_CLAUSE_WORDS = frozenset({"then", "but", "if", "when", "while", "because", "although", "though", "unless",
                           "whereas", "so", "which", "who", "where", "until", "since"})
_NOT_NAMES = frozenset({"i", "a", "an", "the", "ok", "yes", "no"})
_OPPOSITE_PAIRS = (
    ("before", "after"), ("more", "less"), ("more", "fewer"), ("larger", "smaller"), ("greater", "less"),
    ("higher", "lower"), ("increase", "decrease"), ("increases", "decreases"), ("first", "last"),
    ("maximum", "minimum"), ("always", "never"), ("true", "false"), ("enabled", "disabled"), ("enable", "disable"),
    ("allowed", "forbidden"), ("required", "optional"), ("ascending", "descending"), ("earlier", "later"),
    ("above", "below"), ("inside", "outside"), ("include", "exclude"), ("faster", "slower"), ("same", "different"),
    ("inner", "outer"), ("success", "failure"), ("synchronous", "asynchronous"), ("small", "large"),
    ("real", "fake"), ("older", "newer"), ("start", "end"), ("beginning", "end"), ("most", "least"),
)
_OPPOSITES: dict[str, set[str]] = {}
for _a, _b in _OPPOSITE_PAIRS:
    _OPPOSITES.setdefault(_a, set()).add(_b)
    _OPPOSITES.setdefault(_b, set()).add(_a)
# A quoted string that is one name (`unstack()`, `row.names`) is looked for as a name, like an identifier: the
# passage's "Function unstack goes ..." states `unstack()`.
_ONE_NAME = re.compile(r"\w+(?:[.:$]\w+)*(?:\(\))?")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx"})


@dataclass(frozen=True)
class Terms:
    """What a claim asserts that must be found verbatim (modulo case and light inflection) in its passages."""

    numbers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    quoted: tuple[str, ...] = ()


def _norm_number(s: str) -> str:
    s = s.strip("+").rstrip("%")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+", s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


def numbers_in(text: str, context: bool = False) -> set[str]:
    """Normalised numbers of a text ("1,000" -> "1000"), number words included ("three" -> "3")."""
    words = _CONTEXT_NUMBER_WORDS if context else _CARDINALS
    found = {_norm_number(m.group(0)) for m in _NUMBER.finditer(text)}
    return found | {words[w] for w in re.findall(r"[a-z]+", text.lower()) if w in words}


def _is_identifier(tok: str) -> bool:
    core = tok.rstrip("()")
    return (
        tok.endswith("()")
        or "_" in core
        or bool(re.search(r"\w\.\w", core))
        or bool(re.search(r"[a-z][A-Z]", core))  # camelCase, SQLite
        or bool(re.fullmatch(r"[A-Z]{2,}[a-z]?s?", core))  # acronyms: NULL, CLIP, GANs
        or (bool(re.search(r"\d", core)) and bool(re.search(r"[A-Za-z]", core)))  # fts5, utf8
    )


def extract_terms(claim: str) -> Terms:
    """Numbers, names, identifiers and quoted strings of a claim (the first word counts only if code-like)."""
    # A fenced code block counts as one quoted string without its language tag ("```r read.table(...)```").
    unfenced = _FENCE.sub(lambda m: f"`{m.group(1).strip()}`", claim)
    quoted = tuple(dict.fromkeys(next(g for g in m.groups() if g) for m in _QUOTED.finditer(unfenced)))
    names: list[str] = []
    idents: list[str] = []
    masked = claim  # the claim with its identifiers blanked: "gpt-3.5-turbo", "utf-8", "1e-5" are checked whole,
    # as identifiers; the digits inside them are part of a name, no number to find or anchor
    for m in _WORD.finditer(claim):
        tok = m.group(0).rstrip(".'’-")
        if tok.endswith(("'s", "’s")):
            tok = tok[:-2]
        if not tok or not re.search(r"[A-Za-z]", tok) or tok.lower().rstrip(".") in _ABBREVIATIONS:
            continue
        prefix = claim[: m.start()]
        sentence_start = not prefix.strip() or bool(re.search(r"[:;•*\-]\s*$|[.!?]\s+$", prefix))
        if _is_identifier(tok):
            idents.append(tok)
            masked = masked[: m.start()] + " " * (m.end() - m.start()) + masked[m.end():]
        elif tok[0].isupper() and not sentence_start and tok.lower() not in STOPWORDS | _NOT_NAMES:
            names.append(tok)
    numbers = tuple(sorted(numbers_in(masked)))
    return Terms(numbers, tuple(dict.fromkeys(names)), tuple(dict.fromkeys(idents)), quoted)


def plural_stem(word: str) -> str:
    """A word without a plural ending ("indexes" -> "index", "epochs" -> "epoch"; short words keep theirs)."""
    return word[:-2] if word.endswith("es") and len(word) > 4 else word[:-1] if word.endswith("s") and len(word) > 3 \
        else word


def term_present(term: str, text_lower: str) -> bool:
    """A word or identifier occurs in the (lower-cased) text, allowing plural and possessive endings."""
    t = term.lower().rstrip("()")
    stem = plural_stem(t)
    pattern = r"(?<![\w])" + re.escape(stem) + r"(?:s|es|'s|’s|\(\))?(?![\w])"
    return re.search(pattern, text_lower) is not None


def unanchored_number(claim: str, question: str, contexts: list[str] | tuple[str, ...],
                      window: int = ANCHOR_WINDOW) -> str:
    """A number of the claim that its passages never state near the claim's subject, else "".

    The subject is the claim's names and identifiers that the question also has ("download.file", "SAVEPOINT").
    Each number of the claim that the question does not give must occur in a passage sentence that has, within
    `window` sentences either side, every one of them (an identifier's parts count: SQLITE_MAX_COLUMN names
    SQLite). A small model answering "In which version of R was download.file introduced?" with the version in
    the manual's title page has every term of its sentence in the block, but not together.
    """
    t, q = extract_terms(claim), extract_terms(question)
    asked = {x.lower() for x in q.names + q.identifiers}
    subject = [x for x in t.names + t.identifiers if x.lower() in asked]
    given = numbers_in(question, context=True)
    numbers = sorted((n for n in t.numbers if n not in given), key=len, reverse=True)  # the most specific first
    if not subject or not numbers:
        return ""
    units = [split_sentences(c) or [c] for c in contexts]
    for n in numbers:
        if not any(all(term_present(x, near) or term_present(x, near.replace("_", " ")) for x in subject)
                   for sents in units for i, sent in enumerate(sents) if n in numbers_in(sent, context=True)
                   for near in [" ".join(sents[max(0, i - window): i + window + 1]).lower()]):
            return f"{n} is not stated near {', '.join(subject)}"
    return ""


def missing_terms(terms: Terms, context: str) -> list[str]:
    """The claim's terms that do not occur in the context."""
    low = context.lower()
    spaced = " ".join(low.split())
    missing: list[str] = []
    ctx_numbers = numbers_in(context, context=True)
    missing += [n for n in terms.numbers if n not in ctx_numbers]
    missing += [w for w in terms.names + terms.identifiers if not term_present(w, low)]
    missing += [f'"{q}"' for q in terms.quoted
                if not (term_present(q, low) if _ONE_NAME.fullmatch(q) else " ".join(q.lower().split()) in spaced)]
    return missing


def _negation_scopes(text: str) -> tuple[dict[str, str], set[str], set[str]]:
    """Content words of a text by stem, and the stems negated somewhere and everywhere.

    A word is negated when it follows a negation word within NEGATION_SCOPE tokens of the same clause
    ("cannot be raised", "not supported", "no restriction"): comparing negation word for word, rather than
    counting negations, keeps a negated side clause ("... if it cannot be converted") from flipping a sentence.
    """
    tokens = re.findall(r"\d+(?:[.,]\d+)*|\w+(?:[.'’-]\w+)*|[;,:()!?]|\.(?!\w)", text.lower().replace("’", "'"))
    every: dict[str, str] = {}
    negated_any: set[str] = set()
    plain: set[str] = set()
    scope_end = -1
    for i, tok in enumerate(tokens):
        if (not tok[0].isalnum() and tok[0] != "_") or tok in _CLAUSE_WORDS:
            scope_end = -1  # a clause ends
            continue
        if tok in _NEGATIONS or tok.endswith("n't"):
            scope_end = i + NEGATION_SCOPE
            continue
        if tok in STOPWORDS or len(tok) < 2:
            continue
        stem = tok[:5] if len(tok) >= 5 else tok
        every.setdefault(stem, tok)
        (negated_any if i <= scope_end else plain).add(stem)
    return every, negated_any, set(every) - plain


def polarity_conflict(claim: str, passage: str) -> str:
    """A shared word the claim negates and the passage never does, or the reverse ('' when there is none)."""
    c_all, c_any, c_every = _negation_scopes(claim)
    p_all, p_any, p_every = _negation_scopes(passage)
    for w in sorted(set(c_all) & set(p_all)):
        if w in c_every and w not in p_any:
            return f"the claim negates {c_all[w]!r}, the passage does not"
        if w in p_every and w not in c_any:
            return f"the passage negates {p_all[w]!r}, the claim does not"
    return ""


def passage_units(text: str) -> list[str]:
    """Sentences of a passage and pairs of adjacent sentences (claims often merge two)."""
    sents = [s for s in split_sentences(text) if content_words(s)] or ([text] if text.strip() else [])
    return sents + [f"{a} {b}" for a, b in zip(sents, sents[1:], strict=False)]


def opposite_in(claim: str, passage: str) -> str:
    """A word of the claim whose opposite the passage uses instead ('' when there is none)."""
    c_words = set(re.findall(r"[a-z]+", claim.lower()))
    p_words = set(re.findall(r"[a-z]+", passage.lower()))
    for w in sorted(c_words & set(_OPPOSITES)):
        for o in sorted(_OPPOSITES[w]):
            if o in p_words and w not in p_words and o not in c_words:
                return f"says {w!r} where the passage says {o!r}"
    return ""


def lexical_support(claim: str, text: str) -> float:
    """Share of the claim's content words found in a text (1 for a claim without any)."""
    return word_support(claim, text, empty=1.0)


