"""Citation markers: parsing, attaching missing ones, refusal phrases, quotes."""

from __future__ import annotations

from ingest.records import Chunk
from rag import citations as cite
from rag.prompt import REFUSAL, Block
from rag.records import Hit


def _block(n: int, text: str) -> Block:
    chunk = Chunk(chunk_id=f"c{n}", source=f"doc{n}.txt", text=text, start=0, end=len(text), text_hash="h",
                  doc_hash="d", page=n)
    return Block(n, Hit(chunk=chunk, score=1.0), text)


def test_parse_markers_and_invalid_numbers():
    out = cite.parse("GANs appeared in 2014 [1]. Diffusion came later [2, 3]. Made up [9].", n_blocks=3)
    assert [s.text for s in out] == ["GANs appeared in 2014.", "Diffusion came later.", "Made up."]
    assert [s.blocks for s in out] == [(1,), (2, 3), ()]


def test_marker_only_sentence_cites_previous():
    out = cite.parse("GANs appeared in 2014. [2]", n_blocks=2)
    assert len(out) == 1 and out[0].blocks == (2,)


def test_attach_cites_supported_sentences_only():
    blocks = [_block(1, "The telescope mirror measures 40 centimetres."), _block(2, "Bread rises overnight.")]
    sentences = cite.parse("The telescope mirror measures 40 centimetres. The moon is made of cheese.", 2)
    attached = cite.attach(sentences, blocks)
    assert attached[0].blocks == (1,) and attached[0].auto
    assert attached[1].blocks == ()


def test_refusal_detection():
    assert cite.is_refusal(REFUSAL)
    assert cite.is_refusal("The documents do not contain that information.")
    assert cite.is_refusal("")
    assert not cite.is_refusal("GANs appeared in 2014 [1].")


def test_citations_quote_is_verbatim_sentence_of_block():
    blocks = [_block(1, "Intro text here. GANs were introduced in 2014 by Goodfellow. Other stuff follows.")]
    sentences = cite.parse("GANs were introduced in 2014 [1].", 1)
    (c,) = cite.citations(sentences, blocks)
    assert c.quote == "GANs were introduced in 2014 by Goodfellow."
    assert c.quote in blocks[0].hit.chunk.text and c.source == "doc1.txt" and c.page == 1
