"""Kconfig fragments: parse, merge into a .config, and verify that Kconfig kept every value.

Kconfig silently drops an option whose dependencies are not met; `verify` is what catches it.
"""

import re
from pathlib import Path

from mvirt_build.errors import BuildError

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse(text: str, origin: str = "fragment") -> dict[str, str]:
    """Option → value ('n' for `# CONFIG_X is not set`); comments and blank lines are skipped."""
    options: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if m := _SET.match(line):
            options[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            options[m.group(1)] = "n"
        elif line.startswith("#"):
            continue
        else:
            raise BuildError(f"{origin}:{number}: not a Kconfig line: {raw!r}")
    return options


def option_of(line: str) -> str | None:
    """The option a .config line sets or unsets, if any."""
    m = _SET.match(line.strip()) or _UNSET.match(line.strip())
    return m.group(1) if m else None


def render(option: str, value: str) -> str:
    """The .config line for one option."""
    return f"# {option} is not set" if value == "n" else f"{option}={value}"


def merge(config_text: str, fragment: dict[str, str]) -> str:
    """`config_text` with every option of `fragment` set to the fragment's value."""
    kept = [line for line in config_text.splitlines() if option_of(line) not in fragment]
    kept.extend(render(option, value) for option, value in fragment.items())
    return "\n".join(kept) + "\n"


def mismatches(resolved: dict[str, str], fragment: dict[str, str]) -> list[str]:
    """Human-readable lines for each fragment option whose resolved value differs."""
    problems = []
    for option, wanted in fragment.items():
        got = resolved.get(option, "n")
        if got != wanted:
            state = "dropped" if got == "n" else f"is {got}"
            problems.append(f"{option}={wanted} {state} (unmet dependency or wrong name?)")
    return problems


def verify(resolved_config: Path, fragment: dict[str, str]) -> None:
    """Fail naming every option of the fragment that did not keep the value asked for."""
    resolved = parse(resolved_config.read_text(), str(resolved_config))
    problems = mismatches(resolved, fragment)
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        raise BuildError(
            f"Kconfig did not keep {len(problems)} option(s) of the fragment:\n{listing}",
            "enable what they depend on in kernel/kernel.config (see `mvirt-build menuconfig`)",
        )


def changed_options(before: dict[str, str], after: dict[str, str]) -> dict[str, str]:
    """Options whose value differs between two resolved configs (for menuconfig write-back)."""
    changed = {}
    for option in sorted(set(before) | set(after)):
        if before.get(option, "n") != after.get(option, "n"):
            changed[option] = after.get(option, "n")
    return changed


def write_back(fragment_text: str, changed: dict[str, str], note: str) -> str:
    """The fragment with `changed` options replaced, appended under a `# note` heading."""
    kept = [line for line in fragment_text.rstrip().splitlines() if option_of(line) not in changed]
    added = [render(option, value) for option, value in changed.items()]
    return "\n".join([*kept, "", f"# {note}", *added]) + "\n"
