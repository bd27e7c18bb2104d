"""The module collector (run inside the image tree) with the host's interpreter: every loaded
module's file is reported, also when a module replaced itself in sys.modules by a wrapper."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "builder/mvirt_build/collect_modules.py"


def test_a_module_wrapped_without_a_spec_is_still_collected(tmp_path):
    package = tmp_path / "site" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg import wrapped\n")
    # What cryptography does for modules with deprecated names: a wrapper object takes the
    # module's place in sys.modules, keeping __file__ but not __spec__.
    (package / "wrapped.py").write_text(
        "import sys, types\n"
        "class Wrapper(types.ModuleType):\n"
        "    pass\n"
        "wrapper = Wrapper(__name__)\n"
        "wrapper.__file__ = __file__\n"
        "wrapper.__spec__ = None\n"
        "sys.modules[__name__] = wrapper\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", str(SCRIPT), str(tmp_path / "site"), "pkg"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sources = json.loads(out)["modules"]["source"]
    assert str(package / "__init__.py") in sources
    assert str(package / "wrapped.py") in sources
