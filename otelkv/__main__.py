"""``python -m otelkv`` is the ``otelkv`` command."""

import sys

from otelkv.commands import main

sys.exit(main())
