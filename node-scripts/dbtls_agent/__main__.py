"""Entry point for ``python3 -m dbtls_agent`` and for the zipapp."""

import sys

from dbtls_agent.cli import main

if __name__ == "__main__":
    sys.exit(main())
