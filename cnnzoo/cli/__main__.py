"""`python -m cnnzoo.cli ...`: the same as the `cnnzoo` command."""

import sys

from cnnzoo.cli import main

sys.exit(main())
