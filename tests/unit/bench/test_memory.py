"""bench/memory.py on real processes: the peak RSS of a process tree."""

import subprocess
import sys

from bench.memory import PeakRss, tree_rss

# a child that holds about 64 MiB until it is told to go
HOLD = "import sys; block = bytearray(64 * 2**20); block[::4096] = b'x' * len(block[::4096]); " \
       "sys.stdin.read()"


def test_the_peak_counts_the_children_of_the_process():
    child = subprocess.Popen([sys.executable, "-c", HOLD], stdin=subprocess.PIPE)
    try:
        with PeakRss(child.pid, interval_s=0.01) as alone:
            pass
        assert alone.mib > 0
        parent = subprocess.Popen([sys.executable, "-c",
                                   f"import subprocess, sys; subprocess.run([sys.executable, "
                                   f"'-c', {HOLD!r}])"], stdin=subprocess.PIPE)
        try:
            while tree_rss(parent.pid) < 64 * 2**20:  # until the grandchild holds its block
                pass
            with PeakRss(parent.pid, interval_s=0.01) as tree:
                pass
            assert tree.mib >= 64
        finally:
            parent.communicate(b"", timeout=60)
    finally:
        child.communicate(b"", timeout=60)


def test_a_process_that_is_gone_counts_nothing():
    done = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert done.returncode == 0
    assert tree_rss(2**22 + 12345) == 0
