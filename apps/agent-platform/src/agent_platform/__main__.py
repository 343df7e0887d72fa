import sys

from agent_platform.cli import main

sys.exit(main())
