#!/usr/bin/env python3
"""Self-contained HTML page of a benchmark CSV (make show-writes, show-reads,
show-scaling, show-batch, show-compare). `report.py --help` for options."""

import sys

from walrus_report.cli import main

if __name__ == "__main__":
    sys.exit(main())
