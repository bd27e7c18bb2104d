#!/usr/bin/env python3
"""Answers like zfs-fuse's ``zfs`` tool when the zfs-fuse daemon is not running (the shared
zfs-fuse of a test machine cannot be stopped for one test)."""

import sys

sys.stderr.write(
    "connect: No such file or directory\n"
    "Please make sure that the zfs-fuse daemon is running.\n"
    "internal error: failed to initialize ZFS library\n"
)
sys.exit(1)
