"""The optional compiled core ``otelkv.otlp._wire``; everything else is declared in pyproject.toml.

Never a failed install: where the core does not build (no compiler, no Python headers, a failing
compiler, a ``$CC`` that cannot even be split into words), the package installs without it and
otelkv runs its pure-Python reference path; ``otelkv --version`` says which one runs and why
(docs/performance.md, "Building and selecting the core"). ``OTELKV_NO_EXTENSIONS=1`` (any value
but empty or ``0``) leaves the core out.

Why a build_ext of our own beside ``optional=True``: setuptools' ``optional`` catches a failure
inside the build of one extension only (compile, link, a missing compiler binary), not one before
it (``CC='"gcc'`` raised ValueError and failed the install), and neither it nor a skipped build
removes the copy an earlier build left in ``build/`` or, for ``pip install -e``, in the source tree:
that stale core would be installed or imported as if it had just been built.
"""

from __future__ import annotations

import os
from glob import glob
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: Also ``otelkv.config.NO_EXTENSIONS_ENV``, read with the same rule by ``otelkv.otlp.native``.
NO_EXTENSIONS_ENV = "OTELKV_NO_EXTENSIONS"


def _disabled() -> bool:
    return os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0")


class OptionalBuildExt(build_ext):
    """``build_ext`` that leaves out, with a warning, any extension it could not build."""

    def run(self) -> None:
        self._in_place = bool(self.inplace)  # setuptools clears it while building, then copies
        if _disabled():
            for ext in self.extensions:
                self._leave_out(ext, f"{NO_EXTENSIONS_ENV} is set")
            return
        try:
            super().run()
        except Exception as error:  # anything: the package works without its core
            for ext in self.extensions:
                self._leave_out(ext, f"{type(error).__name__}: {error}")

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as error:
            self._leave_out(ext, f"{type(error).__name__}: {error}")

    def _leave_out(self, ext: Extension, reason: str) -> None:
        filename = self.get_ext_filename(self.get_ext_fullname(ext.name))
        stale = [Path(self.build_lib, filename)]
        if getattr(self, "_in_place", False):
            package = ".".join(ext.name.split(".")[:-1])
            package_dir = self.get_finalized_command("build_py").get_package_dir(package)
            stale.append(Path(package_dir, Path(filename).name))
        for path in stale:
            path.unlink(missing_ok=True)
        self.warn(f"otelkv: {ext.name} not built ({reason}); otelkv will run its pure-Python reference path")


#: The core's headers, if it grows any: ``depends`` rebuilds on their change and puts them in the sdist.
HEADERS = sorted(glob("otelkv/otlp/*.h"))

setup(
    ext_modules=[Extension("otelkv.otlp._wire", ["otelkv/otlp/_wire.c"], depends=HEADERS, optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
