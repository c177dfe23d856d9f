"""rag.integrations: a rag index as a LangChain and a LlamaIndex retriever, run through each framework's own
retrieval chain (an LCEL chain; a RetrieverQueryEngine with LlamaIndex's offline MockLLM)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
QUESTION = "When is the aquarium filter pump cleaned?"


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:  # noqa: ANN001
    """A Markdown file (sections), a two-page PDF (pages) and a document of another tenant."""
    from fpdf import FPDF

    from rag import api
    from rag.config import Config

    docs = tmp_path_factory.mktemp("integrations")
    (docs / "care.md").write_text("# Aquarium care\n\n## Pumps\n\nThe aquarium filter pump is cleaned every Monday.\n\n"
                                  "## Feeding\n\nZebrafish eat brine shrimp twice daily.\n")
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in ("The cabinet holds spare nets.", "A spare filter pump is kept in the cabinet under the tank."):
        pdf.add_page()
        pdf.cell(0, 10, text)
    pdf.output(str(docs / "inventory.pdf"))
    other = tmp_path_factory.mktemp("integrations-other")
    (other / "secret.md").write_text("# Quarry\n\nThe filter pump of the basalt quarry is cleaned on Fridays.\n")
    index = tmp_path_factory.mktemp("integrations-index") / "index"
    api.ingest([docs], index, Config(), embedder=embedder, tenant="lab")
    api.ingest([other], index, Config(), embedder=embedder, tenant="quarry")
    return index


def test_langchain_retriever_in_an_lcel_chain(sample_index: Path, embedder) -> None:  # noqa: ANN001
    from langchain_core.documents import Document
    from langchain_core.messages import AIMessage
    from langchain_core.output_parsers import StrOutputParser
    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables import RunnableLambda, RunnablePassthrough

    from rag.integrations.langchain import RagRetriever

    retriever = RagRetriever.from_index(sample_index, k=3, mode="hybrid", tenants=["lab"], embedder=embedder)
    try:
        assert isinstance(retriever, BaseRetriever)
        docs = retriever.invoke(QUESTION)
        assert docs and all(isinstance(d, Document) for d in docs)
        top = docs[0]
        assert top.page_content.endswith("The aquarium filter pump is cleaned every Monday.")
        assert (top.metadata["source"], top.metadata["section"], top.metadata["page"]) == (
            "care.md", "Aquarium care > Pumps", None)
        assert top.metadata["score"] >= docs[-1].metadata["score"] and top.id == top.metadata["chunk_id"]
        assert all(d.metadata["tenant"] == "lab" for d in docs)  # the other tenant's quarry pump never comes back

        def format_docs(found: list[Document]) -> str:
            return "\n".join(f"[{d.metadata['source']} p.{d.metadata['page']}] {d.page_content}" for d in found)

        assert "care.md" in (retriever | format_docs).invoke(QUESTION)
        prompt = ChatPromptTemplate.from_messages([("system", "Answer from the context."),
                                                   ("human", "Context:\n{context}\n\nQuestion: {question}")])
        echo = RunnableLambda(lambda value: AIMessage(value.to_messages()[-1].content))  # a model that repeats its input
        chain = {"context": retriever | format_docs, "question": RunnablePassthrough()} | prompt | echo | StrOutputParser()
        out = chain.invoke("Where is the spare filter pump kept?")
        assert "[inventory.pdf p.2] A spare filter pump is kept in the cabinet under the tank." in out
        assert out.endswith("Question: Where is the spare filter pump kept?")
        found = asyncio.run(retriever.ainvoke("brine shrimp"))
        assert found[0].metadata["section"] == "Aquarium care > Feeding"
    finally:
        retriever.close()
    pdf_only = RagRetriever.from_index(sample_index, k=5, mode="keyword", filters=["source=*.pdf"], embedder=embedder)
    try:
        assert {d.metadata["source"] for d in pdf_only.invoke("filter pump cabinet")} == {"inventory.pdf"}
    finally:
        pdf_only.close()


def test_llama_index_retriever_in_a_query_engine(sample_index: Path, embedder) -> None:  # noqa: ANN001
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import BaseRetriever

    from rag.integrations.llama_index import RagRetriever

    retriever = RagRetriever.from_index(sample_index, k=2, mode="hybrid", tenants=["lab"], embedder=embedder)
    try:
        assert isinstance(retriever, BaseRetriever)
        nodes = retriever.retrieve(QUESTION)
        top = nodes[0]
        assert top.node.get_content().endswith("The aquarium filter pump is cleaned every Monday.")
        assert top.score == top.node.metadata["score"] and top.node.metadata["source"] == "care.md"
        assert top.node.metadata["section"] == "Aquarium care > Pumps"
        engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())  # MockLLM echoes the prompt it is given
        response = engine.query("Where is the spare filter pump kept?")
        sources = [(n.node.metadata["source"], n.node.metadata["page"]) for n in response.source_nodes]
        assert ("inventory.pdf", 2) in sources
        assert "A spare filter pump is kept in the cabinet under the tank." in str(response)
        assert "source: inventory.pdf\npage: 2" in str(response)  # provenance reaches the model
        assert "chunk_id" not in str(response)  # the rest of the metadata does not
        assert all(n.node.metadata["tenant"] == "lab" for n in response.source_nodes)
    finally:
        retriever.close()


@pytest.mark.parametrize("module, extra", [("rag.integrations.langchain", "langchain"),
                                           ("rag.integrations.llama_index", "llamaindex")])
def test_a_missing_framework_names_the_extra(module: str, extra: str) -> None:
    """Without the framework installed, importing the adapter says which extra to install."""
    blocked = "langchain_core" if extra == "langchain" else "llama_index"
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            f"try:\n    import {module}\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert f'pip install "rag[{extra}]"' in out.stdout, out.stdout + out.stderr
