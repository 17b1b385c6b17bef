"""``python -m sampler`` runs the command line."""

from sampler.cli import main

main()
