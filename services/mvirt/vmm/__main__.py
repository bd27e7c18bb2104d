"""``python -m mvirt.vmm`` runs the daemon."""

from mvirt.vmm.daemon import main

main()
