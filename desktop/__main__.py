"""``python -m desktop``: what ``longplay app`` runs."""

import sys

from .app import main

sys.exit(main())
