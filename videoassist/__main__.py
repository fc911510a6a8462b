"""``python -m videoassist`` runs the command-line interface."""

from videoassist.cli import main

raise SystemExit(main())
