"""Text units shared by retrieval, citations, verification and evaluation: content words, sentences, claims and
`[n]` citation markers. One definition of each, so that what is cited, what is checked and what is scored are
the same pieces of text.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

STOPWORDS = frozenset(
    """a an the and or but if of to in on at by for with from as is are was were be been being do does did
    what which who whom whose when where why how this that these those it its there their they them he she his her
    i you your we our us me my can could should would will shall may might must not no yes than then so such
    about into over under between during before after above below up down out off again further once here all
    any both each few more most other some own same too very just also only has have had having
    tell say says said explain describe give list name show""".split()
)
_TOKEN = re.compile(r"[\w][\w.+#-]*[\w+#]|\w", re.UNICODE)

# A citation marker: [1], [1, 2], [1; 3]. The only parser of markers in the code base.
MARKER = re.compile(r"\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]")
_MARKER_WITH_SPACE = re.compile(r"\s*" + MARKER.pattern)
_AFTER_MARKER = re.compile(r"(?<=\d\])\s+(?![\[\s])")  # a marker closes a claim: "A [1] B [2]" is two
_ECHOED_TAG = re.compile(r"</?\s*document\b[^>]*>", re.I)  # small models sometimes echo the prompt's delimiters
# Lines that stand alone: blank-line paragraphs, list items, table rows (also as a context block names their
# columns, "Year: 2014; Model: GANs", rag.tables).
_LINE_BREAK = re.compile(r"\n\s*\n|\n(?=[ \t]*(?:[-*•|]|\d|[^\n:;.]{1,40}: [^\n]*; ))")


def content_words(text: str) -> list[str]:
    """Lower-cased words of a text without stopwords (keyword queries, overlap signals)."""
    return [w for w in (t.lower() for t in _TOKEN.findall(text)) if w not in STOPWORDS and len(w) > 1]


def word_support(sentence: str, text: str, empty: float = 0.0) -> float:
    """Share of a sentence's content words found in a text (5-letter prefixes tolerate inflection, a final "s"
    the plural of a shorter word: "BOM" and "BOMs", "mark" and "marks").

    `empty` is returned when the sentence has no content words: callers say what "nothing to check" means.
    """
    words = set(content_words(sentence))
    if not words:
        return empty
    found = set(content_words(text))
    stems = {w[:5] for w in found}
    return sum(1 for w in words if w in found or (len(w) >= 5 and w[:5] in stems)
               or f"{w}s" in found or (w.endswith("s") and w[:-1] in found)) / len(words)


# A sentence that attributes its claim to the documents: "The lecture states that X", "According to the manual, X",
# "As noted in document [2], X". The documents state X, not that they state it, so the claim checks read X.
_DOC_NOUN = (r"(?:lecture|manual|documentation|docs|documents?|passages?|text|page|section|article|guide|faq|"
             r"source|context)(?:\s*\[\d{1,3}\])?")
_REPORTING = (r"(?:states?|says?|notes?|mentions?|explains?|indicates?|specifies|specify|shows?|reports?|writes?|"
              r"clarifies|confirms?|points out|tells us)")
_ATTRIBUTION = re.compile(
    rf"^\s*(?:(?:according to|as (?:stated|noted|mentioned|explained|described) in|per) (?:the |this )?"
    rf"(?:[\w/.-]+ ){{0,4}}?{_DOC_NOUN}\s*,\s*"
    rf"|(?:the|this) (?:[\w/.-]+ ){{0,4}}?{_DOC_NOUN} (?:also |clearly |explicitly )?{_REPORTING} that\s+"
    rf"|(?:document|passage) \[\d{{1,3}}\] (?:also |clearly |explicitly )?{_REPORTING} that\s+)",
    re.IGNORECASE)


def without_attribution(sentence: str) -> str:
    """The claim a sentence makes without its attribution to the documents ("The manual says that the tool comes
    from Rtools" -> "the tool comes from Rtools", its case kept: an identifier may lead); the sentence itself when it
    has none or fewer than two content words would be left."""
    m = _ATTRIBUTION.match(sentence)
    rest = sentence[m.end():].strip() if m else ""
    return rest if len(content_words(rest)) >= 2 else sentence


_ABOUT_THE_PROMPT = frozenset("""document documents number numbers answer answers question questions passage passages
    source sources provided information context text above below cited citation citations reference references""".split())


def about_the_prompt_only(sentence: str) -> bool:
    """Whether a sentence speaks only of the documents, the question or the answer ("The document number for this
    answer is [3].") and so says nothing a document could state; a yes or no is an answer ("The answer is yes.")."""
    words = content_words(strip_markers(sentence)[0])
    tokens = {t.lower() for t in _TOKEN.findall(sentence)}
    return bool(words) and all(w in _ABOUT_THE_PROMPT for w in words) and not tokens & {"yes", "no", "true", "false"}


@functools.lru_cache(maxsize=1)
def _segmenter():  # noqa: ANN202 - pysbd has no type hints
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=False)


@functools.lru_cache(maxsize=4096)
def _sentences_of_paragraph(paragraph: str) -> tuple[str, ...]:
    # A line break inside a paragraph is not a sentence end (PDF text breaks lines mid-sentence): segment with
    # spaces in their place, then cut the original at the same offsets (same length), so sentences stay verbatim.
    # A cut with no space at it is inside a word: pysbd ends a sentence at the "." of "~/.odbc.ini"; such pieces
    # are joined again.
    flat = paragraph.replace("\n", " ")
    out: list[str] = []
    pos, begun, joinable = 0, 0, False  # begun: where out[-1] starts; joinable: out[-1] was cut from the paragraph
    for segment in _segmenter().segment(flat):
        start = flat.find(segment, pos)
        if start < 0:  # pysbd changed the text (it should not with clean=False): keep its segment
            out.append(segment.strip())
            joinable = False
            continue
        end = start + len(segment)
        if joinable and start == pos and not flat[start - 1].isspace() and not segment[:1].isspace():
            out[-1] = paragraph[begun:end].strip()
        else:
            begun = start
            out.append(paragraph[start:end].strip())
        pos, joinable = end, True
    return tuple(s for s in out if s)


def split_sentences(text: str) -> list[str]:
    """Sentences of a text: verbatim substrings of it, stripped and non-empty.

    Paragraphs, list items and table rows stand alone; within them pysbd finds the sentence ends, so that
    abbreviations ("e.g.", "Dr.", "Fig. 3"), version numbers ("3.40.1") and decimals do not end a sentence
    (bench/sentences.py measures it against the regular expression used before).
    """
    out: list[str] = []
    for paragraph in _LINE_BREAK.split(text):
        if paragraph.strip():
            out.extend(_sentences_of_paragraph(paragraph))
    return out


def strip_markers(text: str) -> tuple[str, tuple[int, ...]]:
    """A text without its [n] markers (whitespace squashed), and the numbers those markers cite, in order."""
    nums = tuple(dict.fromkeys(int(n) for m in MARKER.finditer(text) for n in re.split(r"\s*[,;]\s*", m.group(1))))
    return " ".join(_MARKER_WITH_SPACE.sub("", text).split()), nums


def render_markers(numbers: tuple[int, ...]) -> str:
    return "".join(f" [{n}]" for n in numbers)


def with_markers(text: str, numbers: tuple[int, ...]) -> str:
    """A sentence with its [n] markers before its final punctuation: "It opened in 1998 [1]."."""
    if numbers and text[-1:] in ".!?:;":
        return text[:-1] + render_markers(numbers) + text[-1]
    return text + render_markers(numbers)


@dataclass(frozen=True)
class Claim:
    """One checkable piece of an answer: a sentence (or the part of one up to a citation marker), without its
    markers, and the valid block numbers it cites."""

    text: str
    cited: tuple[int, ...] = ()


def split_claims(answer: str, n_blocks: int) -> list[Claim]:
    """The claims of an answer, each with the block numbers (1..n_blocks) it cites.

    A marker closes a claim ("A [1] B [2]" is two claims); a piece that is only markers cites for the claim
    before it (or, at the start, for the one after it); numbers outside 1..n_blocks are dropped.
    """
    claims: list[Claim] = []
    pending: tuple[int, ...] = ()
    text = _ECHOED_TAG.sub(" ", answer)
    for sentence in split_sentences(text):
        for piece in _AFTER_MARKER.split(sentence):
            body, nums = strip_markers(piece)
            cited = tuple(n for n in nums if 1 <= n <= n_blocks)
            if not content_words(body):
                if claims and cited:
                    last = claims[-1]
                    claims[-1] = Claim(last.text, tuple(dict.fromkeys(last.cited + cited)))
                elif cited:
                    pending = tuple(dict.fromkeys(pending + cited))
                continue
            claims.append(Claim(body, cited or pending))
            pending = ()
    return claims
