#!/usr/bin/env python3
"""A stand-in for kernel ZFS's ``zfs`` tool (no ZFS kernel module can be loaded here): it
records each command line in $FAKE_ZFS_LOG and succeeds, as kernel ZFS does for zvols."""

import json
import os
import sys

with open(os.environ["FAKE_ZFS_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
