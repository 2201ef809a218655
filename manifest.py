# ruff: noqa: F821 - options, include() and package() are MicroPython's manifest API
"""What `make firmware` freezes into MicroPython for a board (docs/firmware.md).

MicroPython's build executes this file through a board's manifest in boards/manifests/, which
names the board's profiles: `include("../../manifest.py", profiles=(...))`. Frozen modules run
from flash; imported from .mpy files on the filesystem they are copied into the heap. main.py and
boot.py stay on the filesystem, where MicroPython runs them by name; nothing of tools/ is frozen.
"""

options.defaults(profiles=())
if not options.profiles:
    raise ValueError("no board profile: build with boards/manifests/BOARD.py (make firmware)")

# The port's own frozen modules (_boot, flashbdev, asyncio, network helpers) stay in the image.
include("$(PORT_DIR)/boards/manifest.py")

# No opt=: mpy-cross's default, as tools/build.py compiles, so tracebacks keep their line numbers.
package("firmware")
package("drivers")
package("boards", files=["__init__.py", "common.py"] + [p + ".py" for p in options.profiles])
