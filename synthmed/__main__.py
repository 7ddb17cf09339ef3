"""``python -m synthmed`` runs the command line."""
from synthmed.cli import main

main()
