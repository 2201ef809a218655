# ruff: noqa: F821 - include() is MicroPython's manifest API
"""ESP32 DevKitC, on MicroPython's ESP32_GENERIC: make firmware BOARD=esp32_devkitc."""

include("../../manifest.py", profiles=("esp32_devkitc",))
