"""``python -m bench [AREA ...]``: run the benchmarks of the named areas (default: all).

Each area is also runnable alone (``python -m bench.<area> --help`` for its options);
every one prints its numbers as ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import subprocess
import sys

AREAS = ("logs", "duration", "simulator", "service", "interference", "hooks")


def main(argv: list[str]) -> int:
    areas = argv or list(AREAS)
    unknown = sorted(set(areas) - set(AREAS))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(AREAS)}")
        return 2
    failed = []
    for area in areas:
        print(f"\n=== bench.{area} ===", flush=True)
        if subprocess.call([sys.executable, "-m", f"bench.{area}"]) != 0:
            failed.append(area)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
