"""`python -m benchmarks [options]`: the same as `pmcost bench [options]`."""

import sys

from pmcost.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
