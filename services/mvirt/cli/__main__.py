"""``python -m mvirt.cli``: the same as the ``mvirt`` command."""

from mvirt.cli.main import main

if __name__ == "__main__":
    main()
