"""Claim checking: is each sentence of an answer supported by the passages it cites?

Local signals, all offline:
  * terms: numbers, names (capitalised words), identifiers (code-like tokens) and quoted strings of the claim
    must occur in the cited passages (all passages when none is cited);
  * similarity: the bi-encoder similarity of the claim to its best passage sentence (or pair of adjacent
    sentences) must reach `min_similarity`;
  * polarity: a claim that is negated while its best sentence is not (or the reverse), or that uses a word whose
    opposite its best sentence uses ("before"/"after", "more"/"less", ...), is flagged.
An optional LLM judge gives a JSON verdict per claim; a claim is supported only when the local signals and the
judge agree (an unusable judge reply leaves the local verdict alone, and says so in the reason).

The default thresholds were chosen on the labelled detector set built from the corpora's dev questions
(`python -m eval.detector tune`), not guessed; see eval/detector.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.prompt import Block, Message, Prompt, split_sentences
from rag.records import ClaimVerdict
from rag.retrieve import STOPWORDS, content_words, word_support

log = logging.getLogger(__name__)

# Chosen on the dev detector set (eval/detector.py `tune`); see the module docstring.
MIN_SIMILARITY = 0.275
MIN_LEXICAL = 0.2
NEGATION_MIN_SIMILARITY = 0.6
NEGATION_SCOPE = 5  # tokens after a negation word (in its clause) that it negates; chosen on dev
SHORT_CLAIM_WORDS = 6  # claims with fewer content words are compared with their question prepended

_MARK = re.compile(r"\s*\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_AFTER_MARK = re.compile(r"(?<=\d\])\s+(?![\[\s])")
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?!\w)%?")
_WORD = re.compile(r"\w+(?:[.'’-]\w+)*(?:\(\))?")
_QUOTED = re.compile(r"\"([^\"]{2,60})\"|“([^”]{2,60})”|`([^`]{1,60})`|(?<!\w)'([^']{2,60})'(?!\w)")
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
_ABBREVIATIONS = frozenset({"e.g", "i.e", "etc", "vs", "cf", "approx"})


@dataclass(frozen=True)
class Terms:
    """What a claim asserts that must be found verbatim (modulo case and light inflection) in its passages."""

    numbers: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    quoted: tuple[str, ...] = ()


def strip_markers(text: str) -> tuple[str, tuple[int, ...]]:
    """A sentence without its [n] markers, and the numbers those markers cite."""
    nums = tuple(dict.fromkeys(int(n) for m in _MARK.finditer(text) for n in re.split(r"[,;]\s*", m.group(1))))
    return " ".join(_MARK.sub("", text).split()), nums


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


def split_claims(answer_text: str, n_contexts: int) -> list[tuple[str, tuple[int, ...]]]:
    """Claims (sentences without markers) of an answer, each with the context numbers (1..n) it cites.

    A citation marker closes a claim ("A [1] - B [2]" is two claims), and a sentence that is only markers cites
    for the claim before it (or, at the start, for the one after it).
    """
    claims: list[tuple[str, tuple[int, ...]]] = []
    pending: tuple[int, ...] = ()
    pieces = [p for s in split_sentences(answer_text) for p in _AFTER_MARK.split(s) if p.strip()]
    for raw in pieces:
        text, cited = strip_markers(raw)
        cited = tuple(n for n in cited if 1 <= n <= n_contexts)
        if not content_words(text):
            if claims and cited:
                t, c = claims[-1]
                claims[-1] = (t, tuple(dict.fromkeys(c + cited)))
            else:
                pending = cited
            continue
        claims.append((text, cited or pending))
        pending = ()
    return claims


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
    quoted = tuple(dict.fromkeys(next(g for g in m.groups() if g) for m in _QUOTED.finditer(claim)))
    names: list[str] = []
    idents: list[str] = []
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
        elif tok[0].isupper() and not sentence_start and tok.lower() not in STOPWORDS | _NOT_NAMES:
            names.append(tok)
    numbers = tuple(sorted(numbers_in(claim)))
    return Terms(numbers, tuple(dict.fromkeys(names)), tuple(dict.fromkeys(idents)), quoted)


def term_present(term: str, text_lower: str) -> bool:
    """A word or identifier occurs in the (lower-cased) text, allowing plural and possessive endings."""
    t = term.lower().rstrip("()")
    stem = t[:-2] if t.endswith("es") and len(t) > 4 else t[:-1] if t.endswith("s") and len(t) > 3 else t
    pattern = r"(?<![\w])" + re.escape(stem) + r"(?:s|es|'s|’s|\(\))?(?![\w])"
    return re.search(pattern, text_lower) is not None


def missing_terms(terms: Terms, context: str) -> list[str]:
    """The claim's terms that do not occur in the context."""
    low = context.lower()
    spaced = " ".join(low.split())
    missing: list[str] = []
    ctx_numbers = numbers_in(context, context=True)
    missing += [n for n in terms.numbers if n not in ctx_numbers]
    missing += [w for w in terms.names + terms.identifiers if not term_present(w, low)]
    missing += [f'"{q}"' for q in terms.quoted if " ".join(q.lower().split()) not in spaced]
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


def _units(text: str) -> list[str]:
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


JUDGE_SYSTEM = """You check whether claims are supported by a context. A claim is supported only if the context
states it (or it follows directly from the context). Numbers, names and negations must match exactly.
Reply with JSON only, in this form:
{"verdicts": [{"claim": 1, "supported": true, "reason": "short reason"}, ...]}"""


@dataclass(frozen=True)
class Signals:
    """Local evidence about one claim: thresholds turn it into a verdict (ClaimChecker.decide)."""

    similarity: float  # best bi-encoder (or lexical, without an embedder) similarity to a passage unit
    lexical: float  # share of the claim's content words found in the passages
    missing: tuple[str, ...] = ()  # numbers, names, identifiers, quoted strings not found
    negation: str = ""  # how the claim's polarity (a negation, an opposite word) differs from its best passage unit


class ClaimChecker:
    """Checks answer sentences against context passages with local signals and an optional LLM judge."""

    def __init__(self, embedder: Any = None, judge: Any = None, min_similarity: float = MIN_SIMILARITY,
                 min_lexical: float = MIN_LEXICAL, negation_min_similarity: float = NEGATION_MIN_SIMILARITY,
                 check_terms: bool = True, check_negation: bool = True, cache_size: int = 4096) -> None:
        self.embedder = embedder
        self.judge = judge
        self.min_similarity = min_similarity
        self.min_lexical = min_lexical
        self.negation_min_similarity = negation_min_similarity
        self.check_terms = check_terms
        self.check_negation = check_negation
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    # -- public API -------------------------------------------------------------------------------------------

    def check_sentences(self, question: str, sentences: Sequence[tuple[str, tuple[int, ...]]],
                        blocks: Sequence[Block]) -> list[ClaimVerdict]:
        """A verdict per (sentence, cited block numbers), in order; uncited sentences are checked against all."""
        by_number = {b.number: b.text for b in blocks}
        every = [b.text for b in blocks]
        claims = []
        for text, cited in sentences:
            ctx = [by_number[n] for n in cited if n in by_number]
            claims.append((text, tuple(n for n in cited if n in by_number), ctx or every))
        return self._check(question, claims)

    def check_answer(self, question: str, answer_text: str, contexts: Sequence[str]) -> list[ClaimVerdict]:
        """Split an answer into claims (sentences) and check each; [n] markers cite contexts[n-1]."""
        claims = []
        for text, cited in split_claims(answer_text, len(contexts)):
            claims.append((text, cited, [contexts[n - 1] for n in cited] or list(contexts)))
        return self._check(question, claims)

    # -- internals --------------------------------------------------------------------------------------------

    def _check(self, question: str, claims: list[tuple[str, tuple[int, ...], list[str]]]) -> list[ClaimVerdict]:
        local = [self._local(text, ctx, question) for text, _, ctx in claims]
        judged: list[tuple[bool, str] | None] = [None] * len(claims)
        if self.judge is not None and claims:
            judged = self._judge(question, claims)
        out = []
        for (text, cited, _), (ok, score, reasons), jv in zip(claims, local, judged, strict=True):
            if jv is not None:
                j_ok, j_reason = jv
                if not j_ok:
                    reasons = reasons + [f"judge: {j_reason or 'not supported'}"]
                ok = ok and j_ok
            elif self.judge is not None:
                reasons = reasons + ["judge reply unusable; local signals only"]
            out.append(ClaimVerdict(claim=text, supported=ok, score=round(float(score), 4),
                                    reason="; ".join(reasons), cited=cited))
        return out

    def signals(self, claim: str, contexts: Sequence[str], question: str = "") -> Signals:
        """The local evidence about one claim, before any threshold is applied.

        A short claim ("512.", "It was written in 2000.") means little without its question, so its similarity
        is also measured with the question prepended, and the better of the two counts.
        """
        context = "\n".join(contexts)
        missing = tuple(missing_terms(extract_terms(claim), context)) if self.check_terms else ()
        units = [u for c in contexts for u in _units(c)]
        sim, best = self._best(claim, units)
        if question and len(content_words(claim)) < SHORT_CLAIM_WORDS:
            sim_q, best_q = self._best(f"{question} {claim}", units)
            if sim_q > sim:
                sim, best = sim_q, best_q
        negation = ""
        if self.check_negation and best:
            lexical_best = max(units, key=lambda u: lexical_support(claim, u))
            flipped = polarity_conflict(claim, best)
            if flipped and polarity_conflict(claim, lexical_best):
                negation = flipped
            elif opposite_in(claim, best) and opposite_in(claim, lexical_best):
                negation = opposite_in(claim, best)
        return Signals(similarity=sim, lexical=lexical_support(claim, context), missing=missing, negation=negation)

    def decide(self, s: Signals) -> tuple[bool, list[str]]:
        """(supported, reasons it is not) from a claim's signals and this checker's thresholds."""
        reasons: list[str] = []
        if s.missing:
            reasons.append("not in the cited passages: " + ", ".join(s.missing[:5]))
        if s.similarity < self.min_similarity:
            reasons.append(f"similarity {s.similarity:.2f} below {self.min_similarity:.2f}")
        if s.lexical < self.min_lexical:
            reasons.append(f"only {s.lexical:.0%} of the claim's words occur in the passages")
        if s.negation and s.similarity >= self.negation_min_similarity:
            reasons.append(s.negation)
        return not reasons, reasons

    def _local(self, claim: str, contexts: Sequence[str], question: str = "") -> tuple[bool, float, list[str]]:
        """(supported, similarity score, reasons it is not) from the local signals alone."""
        if not content_words(claim):
            return True, 1.0, []
        if not "".join(contexts).strip():
            return False, 0.0, ["no context"]
        s = self.signals(claim, contexts, question)
        ok, reasons = self.decide(s)
        return ok, s.similarity, reasons

    def _best(self, claim: str, units: list[str]) -> tuple[float, str]:
        if not units:
            return 0.0, ""
        if self.embedder is None:
            scores = np.array([lexical_support(claim, u) for u in units])
        else:
            vecs = self._embed([claim] + units)
            scores = vecs[1:] @ vecs[0]
        i = int(np.argmax(scores))
        return float(scores[i]), units[i]

    def _embed(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for t, v in zip(todo, self.embedder.embed(todo), strict=True):
                self._cache[t] = v
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        for t in texts:
            self._cache.move_to_end(t)
        return np.stack([self._cache[t] for t in texts])

    def _judge(self, question: str, claims: list[tuple[str, tuple[int, ...], list[str]]]) -> list[
            tuple[bool, str] | None]:
        """One judge call per distinct context; None where the reply gives no usable verdict."""
        from rag.llm.base import complete

        out: list[tuple[bool, str] | None] = [None] * len(claims)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, _, ctx) in enumerate(claims):
            groups.setdefault(tuple(ctx), []).append(i)
        for ctx, idx in groups.items():
            listing = "\n".join(f"{k}. {claims[i][0]}" for k, i in enumerate(idx, start=1))
            user = (f"Context:\n{chr(10).join(ctx)}\n\nQuestion: {question}\n\nClaims:\n{listing}\n\n"
                    "For each claim, is it supported by the context? Answer in JSON.")
            prompt = Prompt((Message("system", JUDGE_SYSTEM), Message("user", user)), question=question,
                            json_mode=True, max_tokens=80 + 60 * len(idx))
            try:
                reply = complete(self.judge, prompt).text
            except Exception as e:  # a failing judge must not fail the answer; local signals still apply
                log.warning("claim judge failed: %s", e)
                continue
            for k, verdict in parse_judge_reply(reply, len(idx)).items():
                out[idx[k - 1]] = verdict
        return out


def parse_judge_reply(text: str, n: int) -> dict[int, tuple[bool, str]]:
    """Verdicts by claim number (1-based) from a judge reply; claims it does not cover are left out."""
    data = _first_json(text)
    if isinstance(data, dict):
        data = data.get("verdicts", data.get("claims", [data] if "supported" in data else []))
    if not isinstance(data, list):
        return {}
    out: dict[int, tuple[bool, str]] = {}
    for pos, item in enumerate(data, start=1):
        if not isinstance(item, dict) or "supported" not in item:
            continue
        k = item.get("claim", pos)
        k = k if isinstance(k, int) and 1 <= k <= n else pos
        sup = item["supported"]
        if isinstance(sup, str):
            sup = sup.strip().lower() in ("true", "yes", "supported", "1")
        if isinstance(sup, bool | int) and k <= n:
            out[k] = (bool(sup), str(item.get("reason", ""))[:200])
    return out


def _first_json(text: str) -> Any:
    """The first JSON object or array in a text (models wrap JSON in prose or code fences)."""
    dec = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return dec.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    return None
