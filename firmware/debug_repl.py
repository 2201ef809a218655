"""The debug_repl setting: micropython-lib's aiorepl on the console, inside the running firmware
(docs/debug-repl.md). Imported only when the setting is on, so that off it costs no heap."""

import asyncio


def start(runtime):
    """aiorepl's task, its globals `runtime` and `asyncio`; None (logged) when aiorepl is not
    installed, and the terminal goes on without it."""
    try:
        import aiorepl
    except ImportError as e:
        runtime.log("debug_repl: aiorepl is not installed (mpremote mip install aiorepl); "
                    "going on without it (%s)" % e)
        return None
    runtime.log("debug_repl: aiorepl on the console, `runtime` is the running terminal; "
                "Ctrl-D there stops the terminal")
    return aiorepl.task({"runtime": runtime, "asyncio": asyncio})
