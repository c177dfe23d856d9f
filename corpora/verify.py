#!/usr/bin/env python3
r"""Verify the sample corpora and their held-out question sets.

Usage:  python corpora/verify.py [CORPUS ...]

For every corpus folder under corpora/ (a folder holding docs/ and
questions/), every question in questions/dev.jsonl and questions/test.jsonl
is checked:

* the object has at least the seven expected keys (extra keys, such as
  "evidence" or "question_type", are allowed and not checked), a
  well-formed unique id (<corpus>-<split>-NNN) and a known type;
* answerable questions: 1-3 non-empty answer keywords, at least one
  reference source; each source path (relative to the corpus's docs/
  folder) exists; for PDFs the 1-based physical page exists; every keyword
  occurs in the text of at least one listed source, and every listed
  source contains at least one keyword; no keyword occurs in the question
  itself (it would make "the answer contains the keyword" trivially true);
* unanswerable questions: answerable is false, type is "unanswerable",
  no keywords, no sources, reference_answer "The documents do not say.";
* the share of unanswerable questions in each split is between 10% and 35%.

Keyword matching is case-insensitive and whitespace-normalised, and only at
word boundaries: the keyword must not be preceded or followed by a word
character (regex (?<!\w)KEYWORD(?!\w)), so "0.7" does not match inside
"10.7" and "NA" does not match inside "names".

Text extraction: .txt/.md as UTF-8; .html/.htm through BeautifulSoup
(lxml parser) with <script>/<style> removed, using get_text() both with no
separator and with a " " separator (a keyword must match in both, so it
does not depend on how tags are joined); .pdf per page through pypdfium2.

Exits 0 when everything passes, 1 otherwise (listing every failure).
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SPLITS = ("dev", "test")
KEYS = {"id", "question", "reference_answer", "answer_keywords",
        "reference_sources", "answerable", "type"}
TYPES = {"factoid", "numeric", "definition", "procedural", "unanswerable"}
UNANSWERABLE_ANSWER = "The documents do not say."
UNANSWERABLE_SHARE = (0.10, 0.35)


def norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@lru_cache(maxsize=None)
def keyword_re(keyword: str) -> re.Pattern[str]:
    """The keyword, whitespace-normalised and case-folded, as a whole-word pattern."""
    return re.compile(rf"(?<!\w){re.escape(norm(keyword))}(?!\w)")


def has_keyword(text: str, keyword: str) -> bool:
    """Whether the keyword occurs at word boundaries in text (already normalised with norm())."""
    return keyword_re(keyword).search(text) is not None


@lru_cache(maxsize=None)
def html_texts(path: Path) -> tuple[str, str]:
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(path.read_bytes(), "lxml")
    for tag in soup(["script", "style"]):
        tag.decompose()
    return norm(soup.get_text()), norm(soup.get_text(" "))


@lru_cache(maxsize=None)
def pdf_pages(path: Path) -> tuple[str, ...]:
    import pypdfium2 as pdfium
    doc = pdfium.PdfDocument(str(path))
    try:
        pages = []
        for i in range(len(doc)):
            page = doc[i]
            textpage = page.get_textpage()
            pages.append(norm(textpage.get_text_range()))
            textpage.close()
            page.close()
        return tuple(pages)
    finally:
        doc.close()


def source_texts(docs: Path, src: dict, errors: list[str], where: str) -> list[str] | None:
    """Return the text variants of one reference source, or None on error."""
    if not isinstance(src, dict) or not isinstance(src.get("source"), str):
        errors.append(f"{where}: malformed source {src!r}")
        return None
    rel = src["source"]
    path = (docs / rel).resolve()
    if docs.resolve() not in path.parents or not path.is_file():
        errors.append(f"{where}: source file not found: docs/{rel}")
        return None
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        if set(src) != {"source", "page"}:
            errors.append(f"{where}: PDF source needs exactly 'source' and 'page': {src!r}")
            return None
        page = src["page"]
        pages = pdf_pages(path)
        if not isinstance(page, int) or isinstance(page, bool) or not 1 <= page <= len(pages):
            errors.append(f"{where}: page {page!r} out of range 1..{len(pages)} in {rel}")
            return None
        return [pages[page - 1]]
    if set(src) != {"source"}:
        errors.append(f"{where}: non-PDF source must only have 'source': {src!r}")
        return None
    if suffix in (".html", ".htm"):
        return list(html_texts(path))
    if suffix in (".txt", ".md"):
        return [norm(path.read_text(encoding="utf-8"))]
    errors.append(f"{where}: unsupported source type: {rel}")
    return None


def check_question(corpus: str, split: str, q: dict, docs: Path, errors: list[str]) -> None:
    qid = q.get("id", "?")
    where = f"{corpus}/{split}/{qid}"
    if not KEYS <= set(q):
        errors.append(f"{where}: missing keys {sorted(KEYS - set(q))}")
        return
    if not isinstance(qid, str) or not re.fullmatch(rf"{re.escape(corpus)}-{split}-\d{{3}}", qid):
        errors.append(f"{where}: bad id (want {corpus}-{split}-NNN)")
    if not isinstance(q["question"], str) or not q["question"].strip():
        errors.append(f"{where}: empty question")
    if not isinstance(q["reference_answer"], str) or not q["reference_answer"].strip():
        errors.append(f"{where}: empty reference_answer")
    if not isinstance(q["type"], str) or q["type"] not in TYPES:
        errors.append(f"{where}: unknown type {q['type']!r}")
    kws, srcs = q["answer_keywords"], q["reference_sources"]
    if not isinstance(kws, list) or not isinstance(srcs, list):
        errors.append(f"{where}: answer_keywords and reference_sources must be lists")
        return
    if q["answerable"] is False:
        if q["type"] != "unanswerable":
            errors.append(f"{where}: unanswerable question must have type 'unanswerable'")
        if kws or srcs:
            errors.append(f"{where}: unanswerable question must have no keywords/sources")
        if q["reference_answer"] != UNANSWERABLE_ANSWER:
            errors.append(f"{where}: unanswerable reference_answer must be {UNANSWERABLE_ANSWER!r}")
        return
    if q["answerable"] is not True:
        errors.append(f"{where}: answerable must be true or false")
        return
    if q["type"] == "unanswerable":
        errors.append(f"{where}: answerable question has type 'unanswerable'")
    if not 1 <= len(kws) <= 3 or not all(isinstance(k, str) and k.strip() for k in kws):
        errors.append(f"{where}: need 1-3 non-empty answer keywords, got {kws!r}")
        return
    if isinstance(q["question"], str):
        question = norm(q["question"])
        for kw in kws:
            if has_keyword(question, kw):
                errors.append(f"{where}: keyword {kw!r} occurs in the question itself")
    if not srcs:
        errors.append(f"{where}: answerable question without reference_sources")
        return
    texts = []
    for src in srcs:
        t = source_texts(docs, src, errors, where)
        if t is None:
            return
        texts.append((src, t))
    for kw in kws:
        if not any(all(has_keyword(variant, kw) for variant in t) for _, t in texts):
            errors.append(f"{where}: keyword {kw!r} not found (as a whole word) in any of {srcs}")
    for src, t in texts:
        if not any(all(has_keyword(variant, kw) for variant in t) for kw in kws):
            errors.append(f"{where}: source {src} contains none of the keywords {kws}")


def check_corpus(corpus_dir: Path, errors: list[str]) -> dict[str, tuple[int, int]]:
    corpus = corpus_dir.name
    docs = corpus_dir / "docs"
    counts = {}
    if not docs.is_dir():
        errors.append(f"{corpus}: missing docs/")
    if not (corpus_dir / "README.md").is_file():
        errors.append(f"{corpus}: missing README.md")
    seen = set()
    for split in SPLITS:
        path = corpus_dir / "questions" / f"{split}.jsonl"
        if not path.is_file():
            errors.append(f"{corpus}: missing questions/{split}.jsonl")
            continue
        n = unans = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                errors.append(f"{corpus}/{split}: blank line {lineno}")
                continue
            try:
                q = json.loads(line)
            except json.JSONDecodeError as e:
                errors.append(f"{corpus}/{split}: line {lineno}: bad JSON: {e}")
                continue
            if not isinstance(q, dict):
                errors.append(f"{corpus}/{split}: line {lineno}: not an object")
                continue
            qid = q.get("id")
            if isinstance(qid, str):
                if qid in seen:
                    errors.append(f"{corpus}/{split}: duplicate id {qid}")
                seen.add(qid)
            n += 1
            unans += q.get("answerable") is False
            check_question(corpus, split, q, docs, errors)
        counts[split] = (n, unans)
        if n:
            share = unans / n
            lo, hi = UNANSWERABLE_SHARE
            if not lo <= share <= hi:
                errors.append(f"{corpus}/{split}: unanswerable share {share:.0%} outside {lo:.0%}-{hi:.0%}")
        else:
            errors.append(f"{corpus}/{split}: no questions")
    return counts


LABELLED = ROOT / "labelled"
SENTENCE_LABELS = {"supported", "unsupported", "refusal"}
ANSWER_LABELS = {"correct", "partial", "wrong", "refused"}
LABELLED_KEYS = {"id", "question", "contexts", "answer", "sentences", "answer_label", "split", "group",
                 "backend", "corpus", "question_id", "question_split", "answerable"}


def all_questions() -> dict[str, dict]:
    """Every corpus question by id, with its split."""
    questions: dict[str, dict] = {}
    for corpus_dir in ROOT.iterdir():
        for split in SPLITS:
            path = corpus_dir / "questions" / f"{split}.jsonl"
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        q = json.loads(line)
                        questions[q["id"]] = {**q, "split": split}
    return questions


def check_sentences(where: str, it: dict, errors: list[str]) -> None:
    """An item's answer label, contexts and sentence labels and citations."""
    if it["answer_label"] not in ANSWER_LABELS:
        errors.append(f"{where}: answer_label {it['answer_label']!r}")
    contexts = it["contexts"]
    if not isinstance(contexts, list) or not all(isinstance(c, str) and c.strip() for c in contexts):
        errors.append(f"{where}: contexts must be non-empty strings")
        contexts = []
    for s in it["sentences"]:
        if s.get("label") not in SENTENCE_LABELS:
            errors.append(f"{where}: sentence label {s.get('label')!r}")
        if not isinstance(s.get("text"), str) or not s["text"].strip():
            errors.append(f"{where}: empty sentence text")
        if any(not isinstance(c, int) or not 1 <= c <= len(contexts) for c in s.get("cited", [])):
            errors.append(f"{where}: sentence cites {s.get('cited')} of {len(contexts)} context(s)")


def json_items(path: Path, where: str, keys: set[str], errors: list[str]) -> Iterator[tuple[str, dict | None]]:
    """(place, item) for each JSON line of `path`; the item is None when it lacks one of `keys` (reported)."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        place = f"{where}:{lineno}"
        try:
            it = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(f"{place}: bad JSON: {e}")
            continue
        missing = keys - set(it)
        if missing:
            errors.append(f"{place}: missing key(s) {sorted(missing)}")
        yield place, None if missing else it


def split_of(path: Path, folder: str, errors: list[str]) -> str | None:
    """The split a labelled/FOLDER file is of, from its name (SPLIT-....jsonl); None (reported) when it names none."""
    split = path.name.split("-", 1)[0]
    if split not in SPLITS:
        errors.append(f"labelled/{folder}/{path.name}: the name must start with a split ({', '.join(SPLITS)})")
        return None
    return split


def split_files(folder: Path, name: str, errors: list[str]) -> Iterator[tuple[Path, str]]:
    """(file, its split) for the labelled/NAME/*.jsonl files, in name order; a file whose name gives no split is
    reported and skipped."""
    for path in sorted(folder.glob("*.jsonl")):
        split = split_of(path, name, errors)
        if split is not None:
            yield path, split


def check_asked(where: str, it: dict, questions: dict[str, dict], split: str, errors: list[str]) -> None:
    """The item's question is a question of `split` of the corpora, asked as the corpus asks it."""
    q = questions.get(it["id"])
    if q is None or q["split"] != split:
        errors.append(f"{where}: {it['id']} is not a {split} question of the corpora")
    elif q["question"] != it["question"] or q["answerable"] != it["answerable"]:
        errors.append(f"{where}: question or answerable differs from {it['id']}")


SHIPPED_KEYS = {"id", "question", "answerable", "contexts", "answer", "sentences", "answer_label"}


def check_shipped(folder: Path, errors: list[str]) -> dict[str, int]:
    """Answers of `rag eval` runs labelled by reading (labelled/shipped/SPLIT-DATE.jsonl): each item a question
    of that split, asked as the corpus asks it, every sentence and answer labelled."""
    questions = all_questions()
    counts: dict[str, int] = {}
    for path, split in split_files(folder, "shipped", errors):
        seen: set[str] = set()
        for where, it in json_items(path, f"labelled/shipped/{path.name}", SHIPPED_KEYS, errors):
            if it is None:
                continue
            if it["id"] in seen:
                errors.append(f"{where}: duplicate id {it['id']}")
            seen.add(it["id"])
            check_asked(where, it, questions, split, errors)
            check_sentences(where, it, errors)
        counts[path.name] = len(seen)
    return counts


PAIR_KEYS = {"id", "question", "answerable", "sentence", "cited", "cited_blocks", "label", "kind", "shown"}


def check_pairs(folder: Path, errors: list[str]) -> dict[str, int]:
    """Drafted (sentence, cited blocks) pairs of `rag eval` runs labelled by reading (labelled/pairs/SPLIT-NAME.jsonl):
    each of a question of that split, asked as the corpus asks it, with its cited blocks' texts and a label."""
    questions = all_questions()
    counts: dict[str, int] = {}
    for path, split in split_files(folder, "pairs", errors):
        n = 0
        for where, it in json_items(path, f"labelled/pairs/{path.name}", PAIR_KEYS, errors):
            n += 1
            if it is None:
                continue
            check_asked(where, it, questions, split, errors)
            if it["label"] not in {"supported", "unsupported"}:
                errors.append(f"{where}: label {it['label']!r}")
            if not isinstance(it["sentence"], str) or not it["sentence"].strip():
                errors.append(f"{where}: empty sentence")
            blocks, cited = it["cited_blocks"], it["cited"]
            if not isinstance(blocks, list) or not blocks or not all(isinstance(b, str) and b.strip() for b in blocks):
                errors.append(f"{where}: cited_blocks must be non-empty strings")
            elif not isinstance(cited, list) or not all(isinstance(c, int) and c >= 1 for c in cited) \
                    or (cited and len(cited) != len(blocks)):
                errors.append(f"{where}: cited {cited!r} does not match its {len(blocks)} cited block(s)")
            if it["kind"] not in {"as drafted", "shown"} or not isinstance(it["shown"], bool):
                errors.append(f"{where}: kind {it['kind']!r} / shown {it['shown']!r}")
        counts[path.name] = n
    return counts


def check_labelled(folder: Path, errors: list[str]) -> dict[str, int]:
    """The labelled real answers (labelled/dev.jsonl, labelled/test.jsonl): every item well formed and labelled,
    every question one of the corpora's, the split by passage group (a group in one split only; a dev group
    holds no test question)."""
    counts: dict[str, int] = {}
    questions = all_questions()
    group_split: dict[str, str] = {}
    seen: set[str] = set()
    for split in SPLITS:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            errors.append(f"labelled: missing {split}.jsonl")
            continue
        n = 0
        for where, it in json_items(path, f"labelled/{split}.jsonl", LABELLED_KEYS, errors):
            n += 1
            if it is None:
                continue
            if it["id"] in seen:
                errors.append(f"{where}: duplicate id {it['id']}")
            seen.add(it["id"])
            if it["split"] != split:
                errors.append(f"{where}: item says split {it['split']!r}")
            q = questions.get(it["question_id"])
            if q is None:
                errors.append(f"{where}: unknown question {it['question_id']}")
            elif q["question"] != it["question"] or q["answerable"] != it["answerable"]:
                errors.append(f"{where}: question or answerable differs from {it['question_id']}")
            elif split == "dev" and q["split"] == "test":
                errors.append(f"{where}: a test question in the dev split")
            if group_split.setdefault(it["group"], split) != split:
                errors.append(f"{where}: passage group {it['group']} is in both splits")
            check_sentences(where, it, errors)
        counts[split] = n
    return counts


def main(argv: list[str]) -> int:
    wanted = set(argv)
    corpora = sorted(p for p in ROOT.iterdir()
                     if p.is_dir() and (p / "questions").is_dir() and (not wanted or p.name in wanted))
    missing = wanted - {p.name for p in corpora} - {"labelled"}
    errors: list[str] = [f"unknown corpus: {m}" for m in sorted(missing)]
    if not corpora and wanted != {"labelled"}:
        errors.append("no corpora found")
    for corpus_dir in corpora:
        counts = check_corpus(corpus_dir, errors)
        summary = ", ".join(f"{s}: {n} ({n - u} answerable, {u} unanswerable)"
                            for s, (n, u) in counts.items())
        print(f"{corpus_dir.name}: {summary}")
    if not wanted or "labelled" in wanted:
        counts = check_labelled(LABELLED, errors)
        print("labelled: " + ", ".join(f"{s}: {n} answers" for s, n in counts.items()))
        counts = check_shipped(LABELLED / "shipped", errors)
        print("labelled/shipped: " + ", ".join(f"{s}: {n} answers" for s, n in counts.items()))
        counts = check_pairs(LABELLED / "pairs", errors)
        print("labelled/pairs: " + ", ".join(f"{s}: {n} pairs" for s, n in counts.items()))
    if errors:
        print(f"\n{len(errors)} failure(s):", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
