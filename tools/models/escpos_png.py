"""Pictures of what the ESC/POS printer model printed: a PNG 384 dots wide, as on 58 mm paper.

CPython only (Pillow). Text is drawn in 12x24 cells (the printer's font A, 32 columns), scaled
for double width / height, bold, aligned; raster blocks dot for dot; a QR code as a box with
finder patterns and a pattern derived from its data (the model records the data, it does not
encode the symbol); a cut as a dashed line. Lines are 30 dots apart (ESC 2, the default
spacing: 24-dot characters and 6 dots of gap).

    render_png(model, "receipts/000042.png")
"""

import hashlib
import os

from PIL import Image, ImageDraw, ImageFont

WIDTH = 384
CELL_W = 12
CELL_H = 24
LINE_GAP = 6
MARGIN = 12
_FONTS = "/usr/share/fonts/truetype/dejavu/"
_cache = {}


def _font(bold):
    if bold not in _cache:
        name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
        path = os.path.join(_FONTS, name)
        # DejaVu Sans Mono advances 0.6 em: size 20 fills a 12-dot cell like the font A.
        if os.path.exists(path):
            _cache[bold] = (ImageFont.truetype(path, 20), False)
        else:
            _cache[bold] = (ImageFont.load_default(size=20), bold)
    return _cache[bold]


def _entries(model_or_lines):
    if hasattr(model_or_lines, "paper"):
        return list(model_or_lines.paper)
    out = []
    for item in model_or_lines:
        out.append(("text", item, (0, False, 1, 1)) if isinstance(item, str) else item)
    return out


def _x(align, w):
    if align == 1:
        return max(0, (WIDTH - w) // 2)
    if align == 2:
        return max(0, WIDTH - w)
    return 0


def _text_image(text, bold, wmul, hmul):
    font, fake_bold = _font(bold)
    img = Image.new("L", (max(1, len(text)) * CELL_W, CELL_H), 255)
    draw = ImageDraw.Draw(img)
    for i, ch in enumerate(text):
        draw.text((i * CELL_W, 1), ch, font=font, fill=0)
        if fake_bold:
            draw.text((i * CELL_W + 1, 1), ch, font=font, fill=0)
    if wmul != 1 or hmul != 1:
        img = img.resize((img.width * wmul, img.height * hmul), Image.NEAREST)
    return img


def _raster_image(width, height, data):
    # Printer raster: bit 1 = a black dot; Pillow's mode "1": bit 1 = white.
    inverted = bytes(b ^ 0xFF for b in data[:width // 8 * height])
    return Image.frombytes("1", (width, height), inverted).convert("L")


def _qr_image(data, modules, dots):
    side = modules * dots
    img = Image.new("L", (side, side), 255)
    draw = ImageDraw.Draw(img)
    bits = hashlib.sha256(data.encode()).digest() * (modules * modules // 256 + 1)
    for y in range(modules):
        for x in range(modules):
            k = y * modules + x
            if bits[k // 8] >> (k % 8) & 1:
                draw.rectangle((x * dots, y * dots, x * dots + dots - 1, y * dots + dots - 1),
                               fill=0)
    for fx, fy in ((0, 0), (modules - 7, 0), (0, modules - 7)):
        x0, y0 = fx * dots, fy * dots
        draw.rectangle((x0, y0, x0 + 7 * dots - 1, y0 + 7 * dots - 1), fill=255)
        draw.rectangle((x0, y0, x0 + 7 * dots - 1, y0 + 7 * dots - 1), outline=0, width=dots)
        draw.rectangle((x0 + 2 * dots, y0 + 2 * dots, x0 + 5 * dots - 1, y0 + 5 * dots - 1),
                       fill=0)
    return img


def render_png(model_or_lines, path):
    """Draw the paper of an EscPosModel (or a list of its paper entries, or of plain text
    lines) into a PNG at `path`; returns the Pillow image."""
    pieces = []  # (image or None for a cut, x, advance)
    for entry in _entries(model_or_lines):
        kind = entry[0]
        if kind == "text":
            align, bold, wmul, hmul = entry[2]
            text = entry[1][:32 // wmul]
            img = _text_image(text, bold, wmul, hmul) if text else None
            w = img.width if img else 0
            pieces.append((img, _x(align, w), CELL_H * hmul + LINE_GAP))
        elif kind == "raster":
            img = _raster_image(entry[1], entry[2], entry[3])
            pieces.append((img, _x(entry[4], img.width), img.height))
        elif kind == "qr":
            img = _qr_image(entry[1], entry[2], entry[3])
            pieces.append((img, _x(entry[4], img.width), img.height))
        elif kind == "cut":
            pieces.append(("cut", 0, 2 * LINE_GAP))
    height = 2 * MARGIN + sum(p[2] for p in pieces)
    page = Image.new("L", (WIDTH, max(height, 2 * MARGIN + 1)), 255)
    draw = ImageDraw.Draw(page)
    y = MARGIN
    for img, x, advance in pieces:
        if img == "cut":
            for x0 in range(0, WIDTH, 16):
                draw.line((x0, y + LINE_GAP, x0 + 8, y + LINE_GAP), fill=0)
        elif img is not None:
            page.paste(img, (x, y))
        y += advance
    page.save(path)
    return page
