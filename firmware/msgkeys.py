"""The keys the terminal's host messages go under (setting `key_scheme`, docs/protocol.md "Keys").

`dukpt` (the default): AES DUKPT (firmware/dukpt.py). Every request takes a fresh KSN (the
initial key ID and the next valid transaction counter), carried in field 53; its MAC is under
the MAC_GENERATION key of that KSN, a purchase's PIN block under its PIN_ENCRYPTION key. An
answer is taken only under the KSN of the latest request it can answer (the same kind), checked
under that KSN's MAC_VERIFICATION key: an answer to an earlier request, or carrying any other
KSN, fails like a bad MAC. Working keys are derived per message and zeroed after use.

A counter is never used twice, power cuts included: before a counter beyond the last
reservation goes out, a journal record `{"r": "ksn", "id": initial key ID, "upto": counter}`
reserves the next RESERVE counters; at boot the terminal resumes after the last reservation,
skipping the ones that may have gone out. The core journals the record (before the request
leaves) and keeps it through compaction (`record()`).

`static`: `mac_key` and `pin_key` serve every message; no field 53. The reservation is still
kept, so a terminal switched back to DUKPT does not reuse its counters.
"""

from binascii import unhexlify

from firmware import dukpt, iso8583

# Counters reserved per journal record: a power cut may lose up to this many (skipped at boot,
# never reused), out of about 2^31 valid counters per initial key.
RESERVE = 32
# The last counter a purchase may take: 1024 valid counters lie above it (counted with
# dukpt.next_counter, tests_host/test_dukpt_terminal.py), for the queries, reversals and
# advices of purchases already made. Plain ints: above the ESP32's small-int range.
PURCHASE_LIMIT = 0xFFF80205
_LAST = 0xFFFF0000


def wipe(buf):
    for i in range(len(buf)):
        buf[i] = 0


class MessageKeys:
    """`active`: DUKPT in use. `last`: counter of the last request (where boot resumes);
    `reserved`: counters up to it are reserved on flash and may have gone out."""

    def __init__(self, settings):
        self.mac_key = unhexlify(settings["mac_key"])
        self.pin_key = unhexlify(settings["pin_key"])
        self.id_hex = settings["initial_key_id"].upper()
        self.ksn_id = unhexlify(self.id_hex)
        self.active = settings["key_scheme"] == "dukpt"
        self.terminal = None
        if self.active:
            initial = bytearray(unhexlify(settings["initial_key"]))
            self.terminal = dukpt.WorkingKeys(initial, self.ksn_id + bytes(4))
            wipe(initial)
        self.last = 0
        self.reserved = 0
        self.expect = {}  # answer MTI -> KSN (field 53) of the latest request it answers

    # ---- counter ---------------------------------------------------------------------------

    def apply(self, rec):
        """Fold in a reservation record; one for another initial key ID (a key since replaced)
        is ignored: a newly loaded key starts its own counter."""
        if rec["id"] == self.id_hex and rec["upto"] > self.reserved:
            self.reserved = rec["upto"]

    def boot(self):
        # Any counter up to the last reservation may have gone out before the power cut.
        self.last = self.reserved

    def record(self):
        """The reservation record that compaction keeps, or None."""
        if self.reserved:
            return {"r": "ksn", "id": self.id_hex, "upto": self.reserved}
        return None

    def purchase_left(self):
        """A purchase may start: DUKPT is off, or its counter leaves the follow-ups theirs."""
        if not self.active:
            return True
        try:
            return dukpt.next_counter(self.last) <= PURCHASE_LIMIT
        except dukpt.CounterExhausted:
            return False

    def next(self):
        """(KSN, reservation record to journal first or None) for the next request. Raises
        dukpt.CounterExhausted when no counter is left."""
        counter = dukpt.next_counter(self.last)
        reservation = None
        if counter > self.reserved:
            upto = counter
            for _ in range(RESERVE - 1):
                if upto >= _LAST:
                    break
                upto = dukpt.next_counter(upto)
            reservation = {"r": "ksn", "id": self.id_hex, "upto": upto}
            self.reserved = upto
        self.last = counter
        return self.ksn_id + bytes(((counter >> 24) & 0xFF, (counter >> 16) & 0xFF,
                                    (counter >> 8) & 0xFF, counter & 0xFF)), reservation

    # ---- keys ------------------------------------------------------------------------------

    def pin_block_key(self, ksn):
        """The PIN block's key: a new bytearray to wipe after use (DUKPT), or the static key."""
        if ksn is None:
            return self.pin_key
        return self.terminal.working_key_for(ksn, dukpt.PIN_ENCRYPTION)

    def encode(self, mti, fields, ksn):
        """A request's frame: `ksn` None, under the static MAC key; else with the KSN in field
        53, MACed under its MAC_GENERATION key, and its answer expected under that KSN."""
        if ksn is None:
            return iso8583.encode(mti, fields, self.mac_key)
        fields[53] = ksn
        self.expect[iso8583.answer_mti(mti)] = ksn
        key = self.terminal.working_key_for(ksn, dukpt.MAC_GENERATION)
        try:
            return iso8583.encode(mti, fields, key)
        finally:
            wipe(key)

    def decode(self, frame):
        """`iso8583.decode` of an answer under the key it must verify under (MacError else)."""
        return iso8583.decode(frame, self._answer_key if self.active else self.mac_key)

    def _answer_key(self, mti, fields):
        # iso8583.decode's resolver: only the KSN of the latest request this answer can answer;
        # the key it returns is a bytearray, zeroed by decode after the check.
        ksn = fields.get(53)
        if ksn is None or ksn != self.expect.get(mti):
            return None
        return self.terminal.working_key_for(ksn, dukpt.MAC_VERIFICATION)
