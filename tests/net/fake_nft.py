#!/usr/bin/env python3
"""Stands in for ``nft`` on PATH: runs the real one, unless the file named by
MVIRT_TEST_NFT_FAIL exists, in which case it refuses like nft does. Lets a test make the
kernel side refuse a change half-way (after the netlink part succeeded)."""

import os
import sys

flag = os.environ.get("MVIRT_TEST_NFT_FAIL", "")
if flag and os.path.exists(flag):
    sys.stderr.write("Error: Could not process rule: No buffer space available\n")
    sys.exit(1)
os.execv("/usr/sbin/nft", ["nft", *sys.argv[1:]])
