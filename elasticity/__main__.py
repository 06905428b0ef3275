"""`python -m elasticity`: the `elasticity` command, for environments without the console script on PATH."""

import sys

from elasticity.cli import main

if __name__ == "__main__":
    sys.exit(main())
