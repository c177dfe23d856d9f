#!/usr/bin/env bash
# The main job on the bundled sample corpus: install, ingest the lecture, ask a question with citations.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install.sh
. .venv/bin/activate
export OMP_WAIT_POLICY=PASSIVE
rag ingest corpora/lecture/docs --index .rag/index
rag retrieve "${1:-Which year does the lecture give for GANs?}" --index .rag/index --k 3
