"""Record the command line of every process in this container until a stop file appears.

Copied into each node by test_hardening_secrets.py and started before the add-on runs. It scans
/proc about every 2 ms (bounded by a deadline), keeps each distinct command line once, and writes
them, one per line with NULs shown as spaces, to OUT when STOP exists or the deadline passes.
Usage: python3 cmdline_sampler.py OUT STOP SECONDS
"""

import os
import sys
import time


def main() -> None:
    out, stop, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
    me = str(os.getpid())
    seen = set()
    scans = 0
    end = time.monotonic() + limit
    while time.monotonic() < end and not os.path.exists(stop):
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or pid == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    line = handle.read()
            except OSError:
                continue
            if line:
                seen.add(line.replace(b"\0", b" ").strip())
        scans += 1
        time.sleep(0.002)
    with open(out + ".tmp", "wb") as handle:
        handle.write(f"# scans {scans}\n".encode() + b"\n".join(sorted(seen)) + b"\n")
    os.rename(out + ".tmp", out)


if __name__ == "__main__":
    main()
