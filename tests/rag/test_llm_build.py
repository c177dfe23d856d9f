"""The llama.cpp build that scripts/install.sh makes: the vector extensions this CPU has, never AMX (its tiles are
advertised by this VM but fault with "Illegal instruction"). AVX-512 made prompt evaluation 1.5x faster here."""

from __future__ import annotations

from pathlib import Path

import llama_cpp

AVX512 = {"avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}


def test_llama_cpp_is_built_for_this_cpus_vector_extensions() -> None:
    info = llama_cpp.llama_print_system_info().decode()
    flags = set(Path("/proc/cpuinfo").read_text().split())
    assert "AVX2 = 1" in info and "FMA = 1" in info, info
    if flags >= AVX512:
        assert "AVX512 = 1" in info and "AVX512_VNNI = 1" in info and "AVX512_BF16 = 1" in info, info
    assert "AMX" not in info, info
