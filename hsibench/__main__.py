"""``python -m hsibench`` is the ``hsibench`` command."""
import sys

from .cli import main

sys.exit(main())
