"""CPython stand-in for the `micropython` module: just enough for firmware modules to import."""


def const(value):
    return value


def native(func):
    return func


viper = native


def mem_info(*args):
    pass


def mem_peak():
    return 0


def heap_lock():
    return 0


def heap_unlock():
    return 0


def alloc_emergency_exception_buf(size):
    pass


def schedule(func, arg):
    func(arg)
