"""``python -m percepnet_live`` runs the CLI."""

from .cli import main

main()
