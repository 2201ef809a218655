"""Prints what to write on a blank tag to make it a demo card (drivers/democard.py's record).

    python -m tools.demotag PAN EXPIRY          e.g.  python -m tools.demotag 4761739001010010 2812

For an NTAG213/215: the hex of pages 4 to 9, one page per line, for an NFC phone app that
writes raw pages (e.g. NXP TagWriter or NFC Tools, "write memory"). For a MIFARE Classic 1K:
block 4 and block 5 (the record's last 8 bytes, then zeros), sector 1 with key A FF..FF.
The card number must exist at the host (tools/host/cards.json) for a purchase to go through.
A card number failing the Luhn check or an expiry month outside 01 to 12 is refused (exit status
2): the terminal would not take such a card (tools/cardnumber.py).
"""

import argparse
import binascii
import sys

from drivers import democard
from tools import cardnumber


def pages(pan, expiry):
    record = democard.encode(pan, expiry)
    return [(democard.NTAG_FIRST_PAGE + i, record[4 * i:4 * i + 4])
            for i in range(democard.RECORD_LEN // 4)]


def blocks(pan, expiry):
    record = democard.encode(pan, expiry) + bytes(8)
    return [(democard.CLASSIC_FIRST_BLOCK, record[:16]),
            (democard.CLASSIC_FIRST_BLOCK + 1, record[16:32])]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.demotag",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("pan", help="card number, 12 to 19 digits")
    parser.add_argument("expiry", help="YYMM")
    args = parser.parse_args(argv)
    refused = cardnumber.pan_error(args.pan) or cardnumber.expiry_error(args.expiry)
    if refused:
        print("demotag: %s" % refused, file=sys.stderr)
        return 2
    try:
        ntag, classic = pages(args.pan, args.expiry), blocks(args.pan, args.expiry)
    except (democard.CardFormatError, ValueError) as e:
        print("demotag: %s" % e, file=sys.stderr)
        return 2
    print("NTAG213/215, pages (write each as 4 bytes):")
    for page, data in ntag:
        print("  page %d: %s" % (page, binascii.hexlify(data).decode().upper()))
    print("MIFARE Classic 1K, sector 1, key A FFFFFFFFFFFF:")
    for block, data in classic:
        print("  block %d: %s" % (block, binascii.hexlify(data).decode().upper()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
