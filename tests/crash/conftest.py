"""Prints the per-kind outcome counts of the crash test at the end of the run."""

import sys


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    mod = sys.modules.get("test_crash")
    results = getattr(mod, "RESULTS", None)
    if not results:
        return
    terminalreporter.section("crash outcomes (seed %d)" % mod.SEED)
    for name, res in results.items():
        terminalreporter.write_line(mod.summary_line(name, res))
