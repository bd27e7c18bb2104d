"""mvirt-log: the central audit log, indexed by every related object id."""
