# ruff: noqa: F821 - include() is MicroPython's manifest API
"""ESP32-S3 DevKitC-1, on MicroPython's ESP32_GENERIC_S3: make firmware BOARD=esp32_s3_devkitc.

Its profile borrows the DevKitC's buses (boards/esp32_s3_devkitc.py), so both are frozen."""

include("../../manifest.py", profiles=("esp32_s3_devkitc", "esp32_devkitc"))
