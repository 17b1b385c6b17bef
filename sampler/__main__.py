"""``python -m sampler`` runs the command line (as the ``sampler`` console script does)."""

from sampler_entry import main

main()
