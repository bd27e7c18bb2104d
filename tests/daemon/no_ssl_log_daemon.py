"""mvirt-log with Python's ``ssl`` module made unimportable, as in an image without OpenSSL's
shared libraries: the daemon's mutual TLS must not need it."""

import sys

sys.modules["ssl"] = None  # type: ignore[assignment]
sys.modules["_ssl"] = None  # type: ignore[assignment]

from mvirt.log.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main()
