"""Prints MicroPython's built-in 8x8 font as a Python bytes literal, for the CPython framebuf
shim (tests_host/shims/framebuf.py), which must render byte-identical buffers.

    .venv/bin/micropython tools/gen_font.py

Each glyph (characters 32 to 127, 127 also standing in for anything outside that range) is
drawn on an 8x8 MONO_VLSB FrameBuffer by the real `framebuf.text`; MONO_VLSB stores one byte per
column with the top pixel in bit 0, which is exactly the font table's layout, so the buffer is
the glyph's 8 bytes.
"""

import framebuf


def main():
    buf = bytearray(8)
    fb = framebuf.FrameBuffer(buf, 8, 8, framebuf.MONO_VLSB)
    print("FONT_8X8 = (")
    for code in range(32, 128):
        fb.fill(0)
        fb.text(chr(code), 0, 0, 1)
        glyph = "".join("\\x%02x" % b for b in buf)
        print('    b"%s"  # %d %s' % (glyph, code, repr(chr(code)) if code < 127 else "DEL"))
    print(")")


main()
