"""Runs INSIDE the image tree (chroot) with the image's own interpreter, standard library only.

Usage: python3 -S collect_modules.py SITE_DIR MODULE...
Imports the modules, then writes to stdout one JSON document listing
every module now loaded: compiled bytecode (hash-based, unchecked, base64) for source modules,
the path of extension modules, and the package folders that were imported.
"""

import sys

# What the program being collected would load: the interpreter's start-up modules plus the
# closure of the imports below. Nothing else may be imported before the snapshot.
if __name__ == "__main__":
    sys.path.append(sys.argv[1])
    for _name in sys.argv[2:]:
        __import__(_name)
    LOADED = dict(sys.modules)

import base64  # imported after the snapshot on purpose
import importlib.util
import json
import marshal


def pyc_bytes(source_path: str) -> bytes:
    """Deterministic .pyc: hash-based (no mtime), unchecked, compiled with its image path."""
    with open(source_path, "rb") as f:
        source = f.read()
    code = compile(source, source_path, "exec", dont_inherit=True)
    flags = 0b01  # hash-based, not checked against the source (there is none in the image)
    header = importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little")
    return header + importlib.util.source_hash(source) + marshal.dumps(code)


def main() -> None:
    """Report what the imports of the snapshot loaded."""
    result: dict[str, dict[str, str]] = {"source": {}, "extension": {}}
    for name, module in sorted(LOADED.items()):
        spec = getattr(module, "__spec__", None)
        # A module may replace itself in sys.modules by a wrapper without a spec (cryptography
        # does, for deprecated names): then its file is where it came from.
        origin = getattr(spec, "origin", None) or getattr(module, "__file__", None)
        if not origin or not origin.startswith("/"):
            continue  # built-in or frozen: part of the interpreter binary
        if origin.endswith(".py"):
            result["source"][origin] = base64.b64encode(pyc_bytes(origin)).decode()
        elif origin.endswith(".so"):
            result["extension"][origin] = name
    # The interpreter finds its prefix by these landmarks; os itself is frozen.
    for landmark in ("os",):
        spec = importlib.util.find_spec(landmark)
        path = f"{sys.prefix}/lib/python{sys.version_info[0]}.{sys.version_info[1]}/{landmark}.py"
        if spec is not None and path not in result["source"]:
            result["source"][path] = base64.b64encode(pyc_bytes(path)).decode()
    json.dump({"modules": result, "executable": sys.executable, "version": sys.version}, sys.stdout)


if __name__ == "__main__":
    main()
