"""``python -m mvirt.zfs`` runs the daemon."""

from mvirt.zfs.daemon import main

main()
