"""`python -m gitops` is the `gitops` command."""

import sys

from gitops.cli import main

sys.exit(main())
