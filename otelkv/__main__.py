"""``python -m otelkv`` is the ``otelkv`` command."""

import sys

from otelkv.cli import main

sys.exit(main())
