"""mvirt runtime: pideisn (PID 1), the daemons and the CLI."""
