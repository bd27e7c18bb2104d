"""mvirt-vmm: the VM manager daemon (lifecycle, hypervisor backends, consoles, recovery)."""
