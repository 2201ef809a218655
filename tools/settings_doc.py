"""Writes docs/settings.md from firmware/settings.py, the one place settings are defined.

    python -m tools.settings_doc            # rewrite docs/settings.md
    python -m tools.settings_doc --check    # exit 1 if docs/settings.md is stale (used by tests)
"""

import sys

from firmware.settings import SPEC

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
    for name, (default, meaning) in SPEC.items():
        shown = "`%s`" % (str(default).lower() if isinstance(default, bool) else default)
        rows.append("| `%s` | %s | %s |" % (name, shown, meaning))
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
