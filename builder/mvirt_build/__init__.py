"""mvirt-build: turns a kernel fragment, a rootfs and an init into a UKI, rebuilding only what changed."""
