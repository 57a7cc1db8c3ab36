"""Run every benchmark: `python -m bench` (what `make bench` calls), or `python -m bench ingest`."""

from __future__ import annotations

import sys

from bench import faults, ingest, load, measurement, realtime, segments

BENCHMARKS = {
    "ingest": ingest.main,
    "segments": segments.main,
    "realtime": realtime.main,
    "measurement": measurement.main,
    "faults": faults.main,
    "load": load.main,
}


def main() -> None:
    chosen = sys.argv[1:] or list(BENCHMARKS)
    for name in chosen:
        BENCHMARKS[name]()


if __name__ == "__main__":
    main()
