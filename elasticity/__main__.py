"""`python -m elasticity`: the `elasticity` command, for environments without the console script on PATH."""

import sys

from elasticity.cli import main

sys.exit(main())
