"""Untrusted files are parsed in worker processes: a file that crashes, overruns its time or its memory costs one
failed line, the worker is replaced, and the rest of the run goes on; workers start once per run."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import hostile
import pytest

from ingest import isolation, pipeline, worker
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
from rag.api import open_pipeline
from rag.config import Config

GOOD = {"a.txt": "Walruses haul out on the ice floes in late spring.\n",
        "z.md": "# Narwhals\n\nThe narwhal tusk is a tooth that grows through the upper lip.\n"}


def _corpus(root: Path, bad: dict[str, bytes | str]) -> Path:
    root.mkdir(parents=True)
    for name, content in {**GOOD, **bad}.items():
        (root / name).write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


@pytest.fixture
def starts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the parser workers started, in order."""
    pids: list[int] = []
    real = isolation.LoaderPool._start

    def start(self):
        worker = real(self)
        pids.append(worker.process.pid)
        return worker

    monkeypatch.setattr(isolation.LoaderPool, "_start", start)
    return pids


def test_recursion_and_decompression_bombs_in_pdfs_each_cost_one_failed_line(tmp_path: Path, hash_embedder, starts,
                                                                            index_snapshot) -> None:
    nested, bomb = hostile.nested_array_pdf(), hostile.flate_bomb_pdf()
    assert len(nested) < 1000 and len(bomb) < 400_000  # small files: 20,000 nested '[' and 300 MB of zeros
    root = _corpus(tmp_path / "docs", {"nested.pdf": nested, "bomb.pdf": bomb})
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=hash_embedder)
    failed = {f.source: f.error for f in report.failed}
    assert sorted(failed) == ["bomb.pdf", "nested.pdf"]
    assert failed["nested.pdf"].startswith("crashed: RecursionError: maximum recursion depth exceeded")
    assert failed["bomb.pdf"].startswith("crashed: LimitReachedError: Limit reached while decompressing")
    assert report.added == ["a.txt", "z.md"]
    assert len(starts) == 1  # an exception in a parser does not cost the worker
    assert index_snapshot(tmp_path / "index").consistent


def test_the_same_files_uploaded_through_the_api_fail_alone(tmp_path: Path, hash_embedder) -> None:
    """What the server's upload job runs (RAG.ingest -> rag.api.ingest -> ingest_paths)."""
    root = _corpus(tmp_path / "up", {"nested.pdf": hostile.nested_array_pdf()})
    config = Config(index_dir=tmp_path / "index")
    ingest_paths([tmp_path / "up" / "a.txt"], config.index_dir, config.ingest, embedder=hash_embedder)
    with open_pipeline(config.index_dir, config, embedder=hash_embedder) as rag:
        report = rag.ingest([root / "nested.pdf", root / "z.md"], tenant="acme")
    assert [(f.source, f.error.split(":")[0]) for f in report.failed] == [("nested.pdf", "crashed")]
    assert report.added == ["z.md"]


def test_a_file_over_the_time_limit_is_killed_and_the_run_goes_on(tmp_path: Path, hash_embedder, starts) -> None:
    root = _corpus(tmp_path / "docs", {"m-slow.pdf": hostile.slow_pdf(300_000)})  # ~30 s of PDFium here
    t = time.monotonic()
    report = ingest_paths([root], tmp_path / "index", IngestConfig(load_timeout_s=2), embedder=hash_embedder)
    elapsed = time.monotonic() - t
    assert [(f.source, f.error) for f in report.failed] == [("m-slow.pdf", "took longer than 2 s (ingest.load_timeout_s)")]
    assert report.added == ["a.txt", "z.md"]  # z.md comes after it: parsed by the replacement worker
    assert len(starts) == 2 and elapsed < 60, (starts, elapsed)  # the file alone takes ~30 s of CPU


def test_a_file_over_the_memory_limit_fails_and_the_run_goes_on(tmp_path: Path, hash_embedder, starts) -> None:
    words = " ".join(["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma"] * 200_000)  # 8 MB, one line
    root = _corpus(tmp_path / "docs", {"m-big.txt": words})
    report = ingest_paths([root], tmp_path / "index", IngestConfig(load_memory_mb=64), embedder=hash_embedder)
    assert [(f.source, f.error) for f in report.failed] == [
        ("m-big.txt", "needed more than 64 MiB of memory (ingest.load_memory_mb)")]
    assert report.added == ["a.txt", "z.md"]
    assert len(starts) == 2  # the worker that ran out of memory retired


def test_a_parser_process_that_dies_costs_only_its_file(tmp_path: Path, hash_embedder, starts) -> None:
    root = _corpus(tmp_path / "docs", {"m-slow.pdf": hostile.slow_pdf(300_000)})

    def kill_the_worker_busy_with_it() -> None:  # as the kernel's OOM killer or a segfault would
        deadline = time.monotonic() + 60
        while len(starts) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # a.txt is done by now; the worker is inside PDFium
        os.kill(starts[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker_busy_with_it)
    killer.start()
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=hash_embedder)
    killer.join()
    assert [(f.source, f.error) for f in report.failed] == [
        ("m-slow.pdf", "crashed: the parser process was killed by SIGKILL")]
    assert report.added == ["a.txt", "z.md"] and len(starts) == 2


def test_workers_start_once_per_run_and_not_at_all_when_nothing_changed(tmp_path: Path, hash_embedder, starts,
                                                                       make_text) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(40):
        (root / f"f{i:02d}.txt").write_text(make_text(i, 40))
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=hash_embedder)
    assert len(report.added) == 40 and len(starts) == 1
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=hash_embedder)
    assert len(report.unchanged) == 40 and len(starts) == 1  # unchanged files are hashed, never parsed


def test_embedding_starts_while_files_are_still_being_parsed(tmp_path: Path, hash_embedder, monkeypatch,
                                                             make_text) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    for i in range(10):
        (root / f"f{i}.txt").write_text(make_text(100 + i, 900))  # ~6 chunks each
    monkeypatch.setattr(pipeline, "EMBED_BATCH", 4)  # embedding starts once 16 texts wait
    events: list[str] = []
    real_embed = hash_embedder.embed

    def embed(texts):
        events.append("embed")
        return real_embed(texts)

    monkeypatch.setattr(hash_embedder, "embed", embed)
    progress = lambda stage, done, total: events.append(f"{stage} {done}/{total}") if stage == "load" else None  # noqa: E731
    report = ingest_paths([root], tmp_path / "index", IngestConfig(), embedder=hash_embedder, progress=progress)
    assert len(report.added) == 10 and report.chunks_embedded > 40
    assert events.index("embed") < events.index("load 6/10"), events  # the old pipeline embedded after loading all


UNGUARDED = """
import sys
print("top-level ran", flush=True)  # no `if __name__ == "__main__"` guard: a worker must not run this again
from pathlib import Path
sys.path[:0] = [{tests!r}]
from conftest import HashEmbedder
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
report = ingest_paths([Path({docs!r})], Path({index!r}), IngestConfig(), embedder=HashEmbedder())
print("added", len(report.added), flush=True)
"""


def test_a_callers_script_without_a_main_guard_is_not_run_again_by_the_workers(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "docs", {})
    script = tmp_path / "script.py"
    script.write_text(UNGUARDED.format(tests=str(Path(__file__).parent), docs=str(root), index=str(tmp_path / "ix")))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["top-level ran", "added 2"]


KILLED = """
import sys
from pathlib import Path
sys.path[:0] = [{tests!r}]
from conftest import HashEmbedder
from ingest import isolation
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
real = isolation.LoaderPool._start
def start(self):
    worker = real(self)
    print("worker", worker.process.pid, flush=True)
    return worker
isolation.LoaderPool._start = start
if __name__ == "__main__":
    ingest_paths([Path({docs!r})], Path({index!r}), IngestConfig(), embedder=HashEmbedder())
"""


def test_workers_die_with_an_ingest_killed_by_sigkill(tmp_path: Path) -> None:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "slow.pdf").write_bytes(hostile.slow_pdf(300_000))
    script = tmp_path / "script.py"
    script.write_text(KILLED.format(tests=str(Path(__file__).parent), docs=str(root), index=str(tmp_path / "ix")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("worker "), line
        worker = int(line.split()[1])
        time.sleep(0.5)
        assert _alive(worker)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 5  # parsing the file would take ~30 s more
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "an orphaned parser worker kept running after its ingest was killed"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_limits_are_settings_validated_with_what_is_allowed() -> None:
    from ingest.config import ConfigError

    config = Config()
    assert (config.ingest.load_timeout_s, config.ingest.load_memory_mb, config.ingest.load_workers) == (60.0, 1536, 1)
    for key, value, allowed in (("load_timeout_s", 0, "greater than 0"), ("load_memory_mb", 16, "greater than or equal to 64"),
                                ("load_workers", 0, "greater than or equal to 1")):
        with pytest.raises(ConfigError, match=rf"ingest.{key} = {value}: .*{allowed}"):
            IngestConfig.from_dict({key: value}, {})
    toml = (Path(__file__).parents[2] / "config.toml").read_text()
    for line in ("load_timeout_s = 60.0", "load_memory_mb = 1536", "load_workers = 1"):
        assert line in toml  # documented with its default


def test_worker_failures_are_one_line_and_never_raise() -> None:
    """load_one, the worker's body, in process: every failure is a result, its reason on one line."""
    task = worker.LoadTask(0, "x.pdf", "x.pdf", hostile.nested_array_pdf())
    result, retire = worker.load_one(task, None, 64)
    assert result.status == "failed" and "\n" not in result.error and not retire
    task = worker.LoadTask(1, "x.html", "x.html", textwrap.dedent(hostile.deep_html(8000)).encode())
    t = time.process_time()  # CPU time: a loaded machine stretches wall time, not this
    result, _ = worker.load_one(task, None, 64)
    assert result.status == "loaded" and "deep text" in result.document.text
    assert time.process_time() - t < 5  # quadratic before: 33 s


def test_a_process_forked_after_an_ingest_starts_its_own_workers(tmp_path: Path, hash_embedder) -> None:
    """A pre-forking server or harness forks after the parent has parsed files: the child cannot use the parent's
    forkserver (it is not the child's child) and must start its own."""
    first = _corpus(tmp_path / "one", {})
    ingest_paths([first], tmp_path / "index1", IngestConfig(), embedder=hash_embedder)
    second = _corpus(tmp_path / "two", {"b.txt": "Puffins nest in burrows.\n"})
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 3
        try:
            report = ingest_paths([second], tmp_path / "index2", IngestConfig(), embedder=hash_embedder)
            code = 0 if report.added == ["a.txt", "b.txt", "z.md"] and not report.failed else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


OTHER_CHECKOUT = """
import sys
sys.path.insert(0, {checkout!r})  # another copy of the package, put first at run time (a checkout, a benchmark)
sys.path[:0] = [{tests!r}]
from pathlib import Path
import ingest
from conftest import HashEmbedder
from ingest.config import IngestConfig
from ingest.pipeline import ingest_paths
assert ingest.__file__.startswith({checkout!r}), ingest.__file__
report = ingest_paths([Path({docs!r})], Path({index!r}), IngestConfig(), embedder=HashEmbedder())
print(report.failed, report.added)
from ingest.collection import Collection
coll = Collection(Path({index!r}))
print(sorted(d.title for d in coll.store.documents()))
"""


def test_workers_parse_with_the_callers_copy_of_the_package(tmp_path: Path) -> None:
    import shutil

    checkout = tmp_path / "checkout"
    shutil.copytree(Path(pipeline.__file__).parent, checkout / "ingest", ignore=shutil.ignore_patterns("__pycache__"))
    text_loader = checkout / "ingest" / "loaders" / "text.py"
    text_loader.write_text(text_loader.read_text().replace('return first[:200], [(text, "", None, None)], []',
                                                           'return "FROM THE OTHER COPY", [(text, "", None, None)], []'))
    root = _corpus(tmp_path / "docs", {})
    script = OTHER_CHECKOUT.format(checkout=str(checkout), tests=str(Path(__file__).parent), docs=str(root),
                                   index=str(tmp_path / "ix"))
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines() == ["[] ['a.txt', 'z.md']", "['FROM THE OTHER COPY', 'Narwhals']"]


def test_the_pool_says_whether_a_result_is_waiting() -> None:
    """LoaderPool.ready: what the pipeline asks before it buffers texts rather than embedding them at once."""
    pool = isolation.LoaderPool(lambda: worker.WorkerSettings(IngestConfig(), None, 0, 256), 1, 30)
    with pool:
        assert not pool.ready()  # no map running
        results = pool.map([worker.LoadTask(0, "a.txt", "a.txt", b"Walruses haul out on the ice."),
                            worker.LoadTask(1, "b.txt", "b.txt", b"Narwhals have one long tusk.")])
        first = next(results)
        deadline = time.monotonic() + 30
        while not pool.ready():  # the second file's result arrives while the first is held here
            assert time.monotonic() < deadline, "the second result never came"
            time.sleep(0.01)
        second = next(results)
        assert [(first.key, first.status), (second.key, second.status)] == [(0, "loaded"), (1, "loaded")]
        assert list(results) == []


def test_what_waits_is_embedded_at_once_only_when_no_parsed_file_waits() -> None:
    """The vector buffer of the pipeline: texts wait for EMBED_BUFFER_BATCHES batches (sorted by length, less
    padding), except that what waits (IDLE_BATCH texts or more, up to a batch) goes to the embedder at once when the
    caller would otherwise idle."""
    from types import SimpleNamespace

    import numpy as np

    from ingest.pipeline import EMBED_BATCH, EMBED_BUFFER_BATCHES, IDLE_BATCH, _VectorCache
    from ingest.records import sha256_hex

    class Store:  # the unit seam: nothing cached yet; what is put is kept
        def __init__(self) -> None:
            self.put: list[str] = []

        def cached_vectors(self, hashes: object) -> dict[str, object]:
            return {}

        def put_vectors(self, hashes: list[str], vectors: object) -> None:
            self.put.extend(hashes)

    batches: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        batches.append(list(texts))
        return np.zeros((len(texts), 4), dtype=np.float32)

    def chunks(start: int, n: int) -> list[SimpleNamespace]:
        texts = [f"text {i} " + "w " * (i % 97) for i in range(start, start + n)]
        return [SimpleNamespace(text=t, text_hash=sha256_hex(t)) for t in texts]

    store = Store()
    cache = _VectorCache(store, embed, lambda *a: None)  # type: ignore[arg-type]
    cache.add(chunks(0, EMBED_BATCH + 10))  # type: ignore[arg-type]
    assert batches == []  # a parsed file is waiting: buffered
    cache.add([], idle=True)
    assert [len(b) for b in batches] == [EMBED_BATCH]  # nothing waits: one full batch, the longest texts
    assert min(map(len, batches[0])) >= max(len(t) for t in cache._todo.values())
    cache.add(chunks(10_000, IDLE_BATCH - 11), idle=True)  # 10 + 21 wait: under IDLE_BATCH, kept for the buffer
    assert len(batches) == 1
    cache.add(chunks(15_000, 1), idle=True)  # IDLE_BATCH wait: embedded, all of them, rather than idle
    assert [len(b) for b in batches] == [EMBED_BATCH, IDLE_BATCH] and not cache._todo
    cache.add(chunks(20_000, EMBED_BATCH * EMBED_BUFFER_BATCHES + 5))  # a full buffer is embedded whatever waits
    assert len(batches) == 3 and len(cache._todo) == 5 + EMBED_BATCH * (EMBED_BUFFER_BATCHES - 1)
    cache.add([], idle=True)  # idle again: one batch (the longest), not all that waits
    assert [len(b) for b in batches][3:] == [EMBED_BATCH]
    cache.flush()
    assert sum(map(len, batches)) == len(store.put) == len(set(store.put)) == \
        EMBED_BATCH * (EMBED_BUFFER_BATCHES + 1) + IDLE_BATCH + 5


def test_a_pdfs_leading_pages_are_sent_ahead_while_it_is_read(tmp_path: Path, make_pdf) -> None:
    """The worker chunks the pages a PDF hands on while it is read: texts go ahead before the whole file is even
    split, up to the page before the first one pypdf or OCR may change (here a blank page 4)."""
    from ingest.chunking import Chunker
    from ingest.embedding import load_tokenizer

    pages = ["" if i == 3 else "".join(f"Page {i}, line {j}: the tern colony on rock {i} counted {i + j} birds.\n"
                                       for j in range(40)) for i in range(6)]
    pdf = make_pdf(tmp_path / "terns.pdf", pages)
    config = IngestConfig()
    tokenizer, max_tokens = load_tokenizer(config.embedding)
    chunker = Chunker(tokenizer, config, max_tokens)
    events: list[tuple[str, int]] = []
    real_split = chunker.split

    def split(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - records when the whole file is split
        events.append(("split", kwargs.get("sent", args[5] if len(args) > 5 else 0)))
        return real_split(*args, **kwargs)

    chunker.split = split  # type: ignore[method-assign]
    sent: list[str] = []

    def ahead(texts: list[str]) -> None:
        events.append(("ahead", len(texts)))
        sent.extend(texts)

    result, _ = worker.load_one(worker.LoadTask(0, "terns.pdf", "terns.pdf", pdf.read_bytes()), chunker, 512,
                                ahead, 2)
    assert result.status == "loaded" and result.chunks
    first_three = [c.text for c in result.chunks if c.page is not None and c.page <= 3]
    before_split = events[:events.index(("split", len(first_three)))]
    assert before_split and all(kind == "ahead" for kind, _ in before_split)  # sent while the file was read
    assert sum(n for _, n in before_split) == len(first_three)  # pages 1-3 exactly, not page 5 or later
    assert sent == [c.text for c in result.chunks[:len(sent)]]


def test_a_big_file_sends_its_chunk_texts_ahead_and_the_index_is_the_same(tmp_path: Path, hash_embedder,
                                                                          make_pdf) -> None:
    """Local workers send chunk texts ahead of the result (EarlyTexts, every `early_texts`), so embedding starts
    while a big file is still being chunked; the texts are exactly the result's chunks, in order, and an index built
    with them is the index built without."""
    from ingest.embedding import load_tokenizer
    from ingest.worker import EarlyTexts, tokenizer_json

    # Page 21 is blank (pypdf or OCR may yet fill it): PDFium's pages 1-20 are chunked and sent ahead as they are
    # read, the rest as they are chunked, at page boundaries.
    pages = ["" if i == 20 else "".join(f"Page {i}, line {j}: the walrus colony on floe {i} counted {i * 7 + j} "
                                        "animals.\n" for j in range(40)) for i in range(30)]
    pdf = make_pdf(tmp_path / "big.pdf", pages)
    config = IngestConfig()
    tokenizer, max_tokens = load_tokenizer(config.embedding)
    settings = worker.WorkerSettings(config, tokenizer_json(tokenizer), max_tokens, 512, early_texts=8)
    with isolation.LoaderPool(lambda: settings, 1, 60) as pool:
        out = list(pool.map([worker.LoadTask(0, "big.pdf", "big.pdf", pdf.read_bytes())]))
    early, result = out[:-1], out[-1]
    assert isinstance(result, worker.LoadResult) and result.status == "loaded" and result.chunks
    assert early and all(isinstance(e, EarlyTexts) and e.key == 0 and len(e.texts) >= 8 for e in early)
    sent = [t for e in early for t in e.texts]
    assert sent == [c.text for c in result.chunks[:len(sent)]] and len(sent) < len(result.chunks)

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "big.pdf").write_bytes(pdf.read_bytes())
    real_settings, real_map = pipeline.Ingestor._worker_settings, isolation.LoaderPool.map
    seen: list[object] = []

    def counting_map(self, items):  # noqa: ANN001, ANN202 - what the pipeline is handed
        for item in real_map(self, items):
            seen.append(item)
            yield item

    reports = []
    try:  # the same ingest with texts sent ahead every 8 chunks (this file has fewer than a batch), and with none
        isolation.LoaderPool.map = counting_map
        for name, every in (("a", 8), ("b", 0)):
            pipeline.Ingestor._worker_settings = (lambda self, n=every:
                                                  dataclasses.replace(real_settings(self), early_texts=n))
            reports.append(ingest_paths([docs], tmp_path / name, config, embedder=hash_embedder))
            if name == "a":
                assert sum(isinstance(x, EarlyTexts) for x in seen) >= 2, seen
                seen.clear()
        assert not any(isinstance(x, EarlyTexts) for x in seen)
    finally:
        pipeline.Ingestor._worker_settings, isolation.LoaderPool.map = real_settings, real_map
    with_early, without = reports
    assert with_early.chunks_added == without.chunks_added == len(result.chunks)
    assert with_early.chunks_embedded == without.chunks_embedded == len({c.text for c in result.chunks})
    with open_pipeline(tmp_path / "a", Config(index_dir=tmp_path / "a"), embedder=hash_embedder) as a, \
            open_pipeline(tmp_path / "b", Config(index_dir=tmp_path / "b"), embedder=hash_embedder) as b:
        for q in ("walrus colony on floe 17", "how many animals on floe 3"):
            assert [(h.chunk.text, round(h.score, 6)) for h in a.search(q, k=5).hits] == \
                   [(h.chunk.text, round(h.score, 6)) for h in b.search(q, k=5).hits]
