"""``python -m service.cli``: the `tadm` command without its console script."""

import sys

from .entry import main

sys.exit(main())
