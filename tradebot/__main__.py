"""`python -m tradebot` runs the CLI."""

from tradebot.cli import main

main()
