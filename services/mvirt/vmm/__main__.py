"""``python -m mvirt.vmm`` runs the daemon."""

from mvirt.vmm.daemon import main

# Guarded so the image builder can import this module to collect what it needs.
if __name__ == "__main__":
    main()
