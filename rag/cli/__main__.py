"""`python -m rag.cli ...` runs the `rag` command."""

from rag.cli import main

main()
