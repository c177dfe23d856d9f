#!/usr/bin/env bash
# Create .venv and install rag with the pinned set (constraints.txt). Idempotent; offline-safe models.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# The browser test drives Debian's chromium with Playwright (Playwright's own browser download fails offline).
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# Scanned PDF pages are read by Tesseract (Debian's tesseract-ocr, English data); without it they are reported.
if ! command -v tesseract >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import rag, ingest, eval" 2>/dev/null || [ "${RAG_REINSTALL:-0}" = 1 ] \
   || [ constraints.txt -nt .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
    python -m pip install -q --upgrade pip
    # torch first, as the CPU build pip finds on local disk: anything else pulls GBs of CUDA wheels.
    python -m pip install -q torch==2.13.0
    # llama-cpp-python compiles from source the first time (~10 min on 2 cores); pip caches the wheel, and a cached
    # wheel is reused whatever CMAKE_ARGS say, so the build is checked below and rebuilt when it lacks this CPU's sets.
    # Named instruction sets, never -march=native: native turns on AMX, whose tiles this VM advertises but does not
    # run ("Illegal instruction"). AVX-512 with VNNI and BF16 where the CPU has them: prompt evaluation 63 -> 94
    # tokens/s with the default model on this 2-core machine (1,150-token prompt, side by side).
    LLAMA_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
    if grep -qw avx512f /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo && grep -qw avx512_bf16 /proc/cpuinfo \
       && grep -qw avx_vnni /proc/cpuinfo; then
        LLAMA_ARGS="$LLAMA_ARGS -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"
    fi
    export CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_ARGS}"
    python -m pip install -q -c constraints.txt -e ".[test]"
    # The wheel pip took may be one cached from an older, AVX2-only build. Rebuild it when this CPU has AVX-512
    # (with VNNI and BF16) and the installed build does not use it; the result is kept in a folder named by the
    # version and the flags, so the next fresh venv on this machine reuses it instead of compiling again.
    HAS_AVX512="import llama_cpp, sys; info = llama_cpp.llama_print_system_info().decode()
sys.exit(not all(f in info for f in ('AVX512 = 1', 'AVX512_VNNI = 1', 'AVX512_BF16 = 1')))"
    if [[ "$CMAKE_ARGS" == *GGML_AVX512=ON* ]] && ! python -c "$HAS_AVX512" 2>/dev/null; then
        LLAMA_VERSION=$(sed -n 's/^llama_cpp_python==//p' constraints.txt)
        FLAGS_ID=$(printf '%s' "$CMAKE_ARGS" | sha256sum | cut -c1-12)
        WHEELS="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/rag/llama-cpp-python-$LLAMA_VERSION-$FLAGS_ID"
        if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
            echo "building llama-cpp-python $LLAMA_VERSION with AVX-512 (about 5-10 minutes on 2 cores)" >&2
            rm -rf "$WHEELS.tmp"  # what an interrupted build left
            python -m pip wheel -q --no-cache-dir --no-deps --no-binary llama-cpp-python \
                "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS.tmp"
            rm -rf "$WHEELS" && mv "$WHEELS.tmp" "$WHEELS"
        fi
        python -m pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-*.whl
        python -c "$HAS_AVX512" || { echo "llama-cpp-python was rebuilt but still lacks AVX-512 (CMAKE_ARGS: $CMAKE_ARGS)" >&2; exit 1; }
    fi
    touch .venv/.installed
fi
