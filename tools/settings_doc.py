"""Writes docs/settings.md from firmware/settings.py, the one place settings are defined.

    python -m tools.settings_doc            # rewrite docs/settings.md
    python -m tools.settings_doc --check    # exit 1 if docs/settings.md is stale (used by tests)
"""

import re
import sys
from pathlib import Path

from firmware.settings import DEFAULTS

SOURCE = Path(__file__).resolve().parents[1] / "firmware" / "settings.py"
# One setting per line: `"name": default,  # meaning`.
_LINE = re.compile(r'^\s+"(\w+)": (.+?),\s+# (.+)$')


def meanings():
    """name -> meaning, read from the comments in firmware/settings.py."""
    found = {}
    for line in SOURCE.read_text().splitlines():
        m = _LINE.match(line)
        if m:
            found[m.group(1)] = m.group(3)
    return found

HEADER = """# Settings

Every setting, its default and its unit. Generated from `firmware/settings.py` by
`python -m tools.settings_doc`; do not edit by hand.

On a board the file `config.json` at the root of the flash overrides the defaults (unknown
names are refused at boot). A scenario's `config` object overrides them on the simulated board.
Keys shown here are test keys: never load real keys onto a development board.

| setting | default | meaning |
|---|---|---|
"""


def render():
    rows = []
    meaning = meanings()
    for name, default in DEFAULTS.items():
        shown = "`%s`" % (str(default).lower() if isinstance(default, bool) else default)
        rows.append("| `%s` | %s | %s |" % (name, shown, meaning[name]))
    return HEADER + "\n".join(rows) + "\n"


def main(argv):
    path = "docs/settings.md"
    text = render()
    if "--check" in argv:
        with open(path) as f:
            return 0 if f.read() == text else 1
    with open(path, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
