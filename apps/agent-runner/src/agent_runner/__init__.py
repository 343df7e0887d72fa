"""The sandboxed Claude agent that executes one run."""
