"""Filters and keyword queries as PostgreSQL: the same restrictions as the embedded store's, inside each query."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.store import ChunkFilter

# The text-search configuration of chunks.tsv (ingest.pg.schema): English stemming, as FTS5's porter tokenizer.
TS_CONFIG = "english"
_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
NEVER = "^$."  # a regular expression nothing matches (a character after the end)


@dataclass(frozen=True)
class FilterSQL:
    """A WHERE clause over `c` (chunks) and, when `joins_documents`, `d` (documents), with its parameters."""

    where: str
    params: tuple[object, ...]
    joins_documents: bool

    def source(self) -> str:
        """The FROM clause the WHERE clause needs."""
        return "chunks c JOIN documents d ON d.id = c.doc_id" if self.joins_documents else "chunks c"


def filter_sql(flt: ChunkFilter | None) -> FilterSQL:
    """ChunkFilter as SQL: globs as anchored regular expressions (SQLite GLOB semantics: case-sensitive, '*'
    crosses '/'), tags by array overlap, tenants on the chunk's own tenant column."""
    flt = flt or ChunkFilter()
    clauses: list[str] = []
    params: list[object] = []

    def any_of(template: str, values: tuple[str, ...]) -> None:
        clauses.append("(" + " OR ".join([template] * len(values)) + ")")
        params.extend(values)

    if flt.sources:
        any_of("d.source ~ %s", tuple(glob_regex(g) for g in flt.sources))
    if flt.kinds:
        clauses.append("d.kind = ANY(%s)")
        params.append(list(flt.kinds))
    if flt.sections:
        any_of("c.section ~ %s", tuple(glob_regex(g) for g in flt.sections))
    if flt.tags:
        clauses.append("d.tags && %s::text[]")
        params.append(list(flt.tags))
    if flt.tenants is not None:
        if flt.tenants:
            clauses.append("c.tenant = ANY(%s)")
            params.append(list(flt.tenants))
        else:
            clauses.append("false")
    joins = bool(flt.sources or flt.kinds or flt.tags)
    return FilterSQL(" AND ".join(clauses) or "true", tuple(params), joins)


def glob_regex(glob: str) -> str:
    """A POSIX regular expression matching what SQLite's GLOB matches: '*', '?', '[...]' and '[^...]'."""
    out = ["^"]
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1
            if j < len(glob) and glob[j] == "^":
                j += 1
            if j < len(glob) and glob[j] == "]":
                j += 1
            while j < len(glob) and glob[j] != "]":
                j += 1
            if j >= len(glob):  # no closing bracket: SQLite's GLOB matches nothing at all
                return NEVER
            else:
                body = glob[i + 1:j]
                negate = body.startswith("^")
                body = (body[1:] if negate else body).replace("\\", "\\\\")
                out.append("[" + ("^" if negate else "") + body + "]")
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def match_terms(match: str) -> list[str]:
    """The words of an OR of double-quoted terms ('"word" OR "other"'), as rag.retrieve builds keyword queries."""
    return [t.replace('""', '"') for t in _QUOTED.findall(match) if t.strip()]


def term_of(term: str) -> str:
    """One quoted term ('"word"') as its word."""
    words = match_terms(term)
    return words[0] if words else term.strip().strip('"')


def clean_text(text: str | None) -> str | None:
    """Text PostgreSQL can store: NUL characters (which SQLite keeps) replaced, lengths unchanged."""
    return text.replace("\x00", "\ufffd") if text is not None else None
