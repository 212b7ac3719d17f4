"""The ``otelkv`` command: one module per subcommand (``serve``, ``check_config``, ``replay``,
``migrations``, ``dead_letter``), each with a ``run(args)``, the parser (:mod:`.parser`) and
:func:`main` (:mod:`.main`), which prints every user error in one line and exits 2."""

from otelkv.commands.main import main

__all__ = ["main"]
