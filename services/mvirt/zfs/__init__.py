"""mvirt-zfs: templates, volumes and snapshots on a ZFS pool (see docs/zfs.md)."""
