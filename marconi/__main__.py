"""`python -m marconi` is the `marconi` command."""

from marconi.cli import main

main()
