"""``python -m hepbundle``."""

from hepbundle.cli import main

main()
