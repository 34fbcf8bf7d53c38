"""`python -m serving.client`: the client's CLI (see serving.client.cli)."""

import sys

from serving.client.cli import main

sys.exit(main())
