"""py-spy attached to a running service process, and the collapsed stacks it wrote summarized per function
(self time and total time), for the benchmarks' ``--profile``. py-spy must be installed in the venv
(``.venv/bin/pip install py-spy``); it is a measuring tool, not a dependency."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path


def attach(pid: int, out: Path, *, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start sampling ``pid`` (until it exits or the returned process is terminated) into ``out``."""
    py_spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--rate", str(rate), "--output", str(out),
         "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


def summarize(raw: Path, *, top: int = 30) -> str:
    """The functions with the most samples on top of the stack (self) and anywhere in it (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    if not samples:
        return "(no samples)"
    lines = [f"{samples} samples", "self%  total%  function"]
    for frame, count in own.most_common(top):
        lines.append(f"{100 * count / samples:5.1f}  {100 * total[frame] / samples:6.1f}  {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1]), top=int(sys.argv[2]) if len(sys.argv) > 2 else 30))
