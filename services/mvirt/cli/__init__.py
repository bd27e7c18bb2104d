"""The ``mvirt`` command-line client: one click group, one module per command family."""
