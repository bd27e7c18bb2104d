"""The ``mvirt`` TUI (textual): one view per daemon, modals for create, detail and delete,
and a console pane. ``mvirt`` with no command opens it."""
