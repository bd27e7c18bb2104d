"""mvirt-build: kernel fragment + rootfs + init → a UKI, rebuilding only what changed."""
