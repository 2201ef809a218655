"""What a MicroPython board does between reset and main.py, as source for the unix port.

The virtual board (tools/vboard.py) and the simulated board (tools/sim/session.py) start the
unix port with `-c boot_source(...)`, so that the firmware finds what the ESP32 port gives it:
- a ROMFS partition mounted at /rom, with /rom and /rom/lib on sys.path after '' and .frozen
  (the ESP32 port does this in mp_init when the image has MICROPY_VFS_ROM and the partition
  table a romfs partition: docs/romfs.md), and `vfs.rom_ioctl` as the ESP32 port answers it:
  1 the number of ROM partitions, 2 the partition as a block device, through which `mpremote
  romfs deploy` erases and writes it. The partition is a file on the PC; the unix port has no
  memory-mapped flash, so its bytes are read into the heap: `vfs.rom_heap` says how many bytes
  that took, which the simulated board counts as its own weight (on a board they are flash);
- for the virtual board, `machine.reset()` and `machine.soft_reset()` ending the process by a
  signal each (the bridge starts a new one, and knows which reset it was), `os.stat('')` as
  littlefs answers it, and boot.py then main.py run from the working folder.
"""

ROMFS_HEADER = b"\xd2\xcd\x31"

# vfs.rom_ioctl as the ESP32 port answers it (ports/esp32/esp32_partition.c): the partition is
# an esp32.Partition, a block device of 4 KB blocks that mpremote erases (ioctl 6) and writes
# (writeblocks); here a bytearray, so that VfsRom and memoryview read it in place.
_ROM = """
import gc, vfs as _vfs
class _Vfs:
    pass
class _Partition(bytearray):
    def ioctl(self, op, arg):
        if op == 4:
            return len(self) // 4096
        if op == 5:
            return 4096
        if op == 6:
            self.writeblocks(arg, b'\\xff' * 4096)
            return 0
        return 0 if op in (1, 2, 3) else None
    def readblocks(self, block, buf, offset=0):
        at = block * 4096 + offset
        buf[:] = memoryview(self)[at:at + len(buf)]
    def writeblocks(self, block, buf, offset=0):
        at = block * 4096 + offset
        memoryview(self)[at:at + len(buf)] = buf
        f = open(%(romfs)r, 'r+b')
        f.seek(at)
        f.write(buf)
        f.close()
def _rom_shim(path):
    shim = _Vfs()
    for k in dir(_vfs):
        if not k.startswith('__'):
            setattr(shim, k, getattr(_vfs, k))
    gc.collect()
    before = gc.mem_alloc()
    f = open(path, 'rb')
    f.seek(0, 2)
    part = _Partition(f.tell())
    f.seek(0)
    f.readinto(part)
    f.close()
    shim.rom_heap = gc.mem_alloc() - before
    def rom_ioctl(op, rom_id=0):
        if op == 1:
            return 1
        if op == 2 and rom_id == 0:
            return part
        return -22  # EINVAL
    shim.rom_ioctl = rom_ioctl
    sys.modules['vfs'] = shim
    if bytes(memoryview(part)[:3]) == %(header)r:
        _vfs.mount(_vfs.VfsRom(part), '/rom')
_rom_shim(%(romfs)r)
del _rom_shim
"""

# The signals the virtual board's process ends by for machine.reset() and machine.soft_reset()
# (kill's names): tools/vboard.py tells the two resets apart by them.
RESET_SIGNAL = "USR1"
SOFT_RESET_SIGNAL = "USR2"

# The virtual board's reset vector: machine.reset() and machine.soft_reset() end the process by
# a signal, since the unix port run with -i enters its REPL after a SystemExit from this
# program (a crash in main.py would sit at the REPL instead of resetting, as the chip does).
_BOARD = """
def _shim(mod, **replace):
    # A copy of a built-in module with some functions replaced (built-ins take no attributes).
    class _Shim:
        pass
    shim = _Shim()
    for k in dir(mod):
        if not k.startswith('__'):
            setattr(shim, k, getattr(mod, k))
    for k in replace:
        setattr(shim, k, replace[k])
    return shim
import os as _os
def _ends_by(signal, system=_os.system):
    def reset():
        system('kill -%%s $PPID' %% signal)
        while True:  # until the signal lands: nothing after a reset runs
            pass
    return reset
try:
    import machine as _m
    sys.modules['machine'] = _shim(_m, reset=_ends_by(%(reset)r),
                                   soft_reset=_ends_by(%(soft_reset)r))
    del _m
except ImportError:
    pass
# On the board, '' names the current folder (littlefs joins it to the cwd), and mpremote relies
# on it (`cp -r dir :`); the unix port's POSIX calls refuse it.
def _here(f):
    return lambda p='.', *a: f(p or '.', *a)
sys.modules['os'] = _shim(_os, stat=_here(_os.stat), listdir=_here(_os.listdir),
                          ilistdir=_here(_os.ilistdir))
del _os, _here, _ends_by, _shim
""" % {"reset": RESET_SIGNAL, "soft_reset": SOFT_RESET_SIGNAL}

# The simulated board's profile, imported before main.py (which then finds it loaded) with the
# heap it took recorded in it: the simulation's own weight (boards/sim.py heap_report). What it
# shares with the firmware is imported first, so it counts as the firmware's: the modules, and
# the firmware's names (qstrs), interned as a board interns them, by importing a module of
# nothing but those names from the same place as the firmware's code (names_source): from
# ROMFS a name's characters stay in flash, from a .mpy file they are copied into the heap.
# Then, in the weighed window, the simulation's names the same way, so that the qstr pools they
# add (pools double: 9 KB for the pool after 1260 names, on 32 bits) are allocated there, not
# the firmware's, and while the heap is still in one piece.
_PRELOAD = """
import gc
gc.collect()
# This program so far, the ROM partition's bytes aside: on a board, C code, not heap.
_boot_heap = gc.mem_alloc() - getattr(sys.modules.get('vfs'), 'rom_heap', 0)
import binascii, json, os, asyncio, boards
def _names(module):
    if module is None:
        return
    __import__(module)
    names = sys.modules.pop(module)
    package, _, leaf = module.rpartition('.')
    delattr(sys.modules[package], leaf)
    # The names importing makes from strings in RAM (a module's file path, its name in its
    # package), which are copied into the heap on a board too.
    for name in names.COPIED:
        hasattr(sys, name)
_names(%(names)r)
gc.collect()
_before = gc.mem_alloc()
_names(%(own_names)r)
import %(module)s as _profile
gc.collect()
_profile.IMPORT_HEAP = gc.mem_alloc() - _before
_profile.BOOT_HEAP = _boot_heap
del _profile, _before, _names, _boot_heap
"""

_RUN = """
def _run(name):
    try:
        f = open(name)
    except OSError:
        return
    code = f.read()
    f.close()
    try:
        exec(code, {'__name__': '__main__'})
    except KeyboardInterrupt:
        pass
    except SystemExit:
        raise
    except Exception as e:
        sys.print_exception(e)
for _name in %(run)r:
    _run(_name)
del _run
"""


def boot_source(lib, *, romfs=None, board=True, run=("boot.py", "main.py"), here="",
                preload=None):
    """The unix port's -c program: sys.path as the port sets it (here: the folder the firmware's
    files are in, '' the current one as on a board; lib: the board's /lib), the ROMFS partition
    file `romfs` mounted at /rom (None: no ROM partition), the board shims, then the scripts
    `run`, in order. preload: (module, the firmware's names module, its own names module): the
    module is imported and weighed, after the firmware's names and with its own (modules made
    by names_source, see _PRELOAD)."""
    path = [here, ".frozen"]
    if romfs is not None:
        path += ["/rom", "/rom/lib"]
    path.append(lib)
    parts = ["import sys\nsys.path[:] = %r\n" % path]
    if romfs is not None:
        parts.append(_ROM % {"romfs": str(romfs), "header": ROMFS_HEADER})
    if board:
        parts.append(_BOARD)
    if preload:
        module, names, own_names = preload
        parts.append(_PRELOAD % {"module": module, "names": names, "own_names": own_names})
    parts.append(_RUN % {"run": list(run)})
    return "".join(parts)


def blank_partition(path, size):
    """A ROM partition file of `size` bytes as an erased flash reads (0xFF), unless one of that
    size is there already (its image survives a power cycle, as flash does)."""
    import os

    try:
        if os.path.getsize(path) == size:
            return
    except OSError:
        pass
    with open(path, "wb") as f:
        f.write(b"\xff" * size)


def mpy_qstrs(path):
    """The names a .mpy file has MicroPython intern when it is loaded: its qstr table less the
    static qstrs every port has built in (the .mpy format v6, py/persistentcode.c: a vuint
    count of qstrs and one of objects after the 4-byte header, then per qstr a vuint, odd for
    a static qstr's index, else twice the length, followed by the characters and a NUL)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] != b"M\x06":
        raise ValueError("%s: not a version 6 .mpy file" % path)
    at = 4
    count, at = _vuint(data, at)
    _, at = _vuint(data, at)
    names = []
    for _ in range(count):
        value, at = _vuint(data, at)
        if not value & 1:
            names.append(data[at:at + (value >> 1)].decode())
            at += (value >> 1) + 1
    return names


def _vuint(data, at):
    value = 0
    while True:
        byte = data[at]
        at += 1
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            return value, at


def names_source(names, copied=()):
    """Python source of a module whose qstr table holds `names`, so that importing it interns
    them as importing the modules they come from would (from ROMFS their characters stay in
    flash, from a .mpy file they are copied into the heap); and COPIED, the names import makes
    from strings in RAM, to be interned from the list. A name that is neither an identifier, a
    dotted module name nor a string of up to 10 characters (which the compiler interns) is
    interned from the list too (a module's source file name)."""
    import keyword

    def word(name):
        return name.isidentifier() and not keyword.iskeyword(name)

    lines = ["def _names(x):  # never called: its code holds the names\n"]
    copied = list(copied)
    for name in names:
        if word(name):
            lines.append("    x.%s\n" % name)
        elif "." in name and all(word(part) for part in name.split(".")):
            lines.append("    import %s\n" % name)
        elif len(name) <= 10:
            lines.append("    x[%r]\n" % name)
        else:
            copied.append(name)
    return "".join(lines) + "\n\nCOPIED = %r\n" % (tuple(copied),)
