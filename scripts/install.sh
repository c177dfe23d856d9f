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
    # llama-cpp-python compiles from source the first time (~10 min on 2 cores); pip caches the wheel.
    # A portable AVX2 build: a -march=native build crashed here with "Illegal instruction".
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
    python -m pip install -q -c constraints.txt -e ".[test]"
    touch .venv/.installed
fi
