"""`python -m pipeline run [--data ...]`: see pipeline/cli.py and docs/pipeline.md."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
