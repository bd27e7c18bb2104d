"""``python -m mvirt.net`` runs the daemon."""

from mvirt.net.daemon import main

main()
