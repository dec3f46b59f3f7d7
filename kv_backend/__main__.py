"""``python -m kv_backend`` runs the ``kvb`` command line."""

import sys

from kv_backend.cli import main

sys.exit(main())
