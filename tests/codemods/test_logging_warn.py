"""Tests for codemods.logging_warn.ReplaceLoggingWarn."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext, CodemodTest

from codemods.logging_warn import ReplaceLoggingWarn


class TestReplaceLoggingWarn(CodemodTest):
    TRANSFORM = ReplaceLoggingWarn

    def test_logging_module(self) -> None:
        before = """
            import logging
            import logging as lg

            logging.warn("disk %s is full", disk)  # why
            lg.warn("aliased")
        """
        after = """
            import logging
            import logging as lg

            logging.warning("disk %s is full", disk)  # why
            lg.warning("aliased")
        """
        self.assertCodemod(before, after)

    def test_conventional_logger_names(self) -> None:
        before = """
            def f(self, cls):
                log.warn("a")
                logger.warn("b")
                LOGGER.warn("c")
                _logger.warn("d")
                _log.warn("e")
                self.logger.warn("f")
                cls._log.warn("g")
                app.state.LOGGER.warn(
                    "h",  # trailing
                )
        """
        after = """
            def f(self, cls):
                log.warning("a")
                logger.warning("b")
                LOGGER.warning("c")
                _logger.warning("d")
                _log.warning("e")
                self.logger.warning("f")
                cls._log.warning("g")
                app.state.LOGGER.warning(
                    "h",  # trailing
                )
        """
        self.assertCodemod(before, after)

    def test_names_assigned_from_get_logger_anywhere_in_module(self) -> None:
        before = """
            import logging
            from logging import getLogger

            def early():
                audit.warn("used before the assignment below")

            class Service:
                def __init__(self) -> None:
                    self.events: logging.Logger = getLogger("events")

                def run(self) -> None:
                    self.events.warn("x")

            audit = logging.getLogger("audit")
            logging.getLogger(__name__).warn("direct")
        """
        after = """
            import logging
            from logging import getLogger

            def early():
                audit.warning("used before the assignment below")

            class Service:
                def __init__(self) -> None:
                    self.events: logging.Logger = getLogger("events")

                def run(self) -> None:
                    self.events.warning("x")

            audit = logging.getLogger("audit")
            logging.getLogger(__name__).warning("direct")
        """
        self.assertCodemod(before, after)

    def test_unrelated_warn_is_untouched(self) -> None:
        code = """
            import warnings
            import logging

            warnings.warn("deprecated", DeprecationWarning)
            foo.warn("x")
            self.reporter.warn("x")
            audit = make_audit()
            audit.warn("not a logging logger")
            logging.warning("already fine")
            logger.warning("already fine")
            logger.warn
            catalog.warn("x")
        """
        self.assertCodemod(code, code)

    def test_logging_not_imported_is_untouched(self) -> None:
        # Without an import, ``logging`` could be anything (and nothing here is a logger).
        code = 'logging.warn("x")\n'
        self.assertCodemod(code, code)

    def test_from_logging_import_warn(self) -> None:
        before = """
            from logging import warn

            def f():
                warn("careful")
                callback = warn
        """
        after = """
            from logging import warning

            def f():
                warning("careful")
                callback = warning
        """
        self.assertCodemod(before, after)

    def test_from_logging_import_warn_among_other_names(self) -> None:
        before = """
            from logging import getLogger, warn

            warn("x")
        """
        after = """
            from logging import warning, getLogger

            warning("x")
        """
        self.assertCodemod(before, after)

    def test_from_logging_import_warn_with_alias(self) -> None:
        before = """
            from logging import warn as w

            w("x")
        """
        after = """
            from logging import warning as w

            w("x")
        """
        self.assertCodemod(before, after)

    def test_shadowing_warning_keeps_old_import(self) -> None:
        # ``warning`` is a local variable in f, so ``warn`` there cannot be renamed and
        # the import must stay; g can still use the new name.
        before = """
            from logging import warn

            def f(warning):
                warn(warning)

            def g():
                warn("x")
        """
        after = """
            from logging import warning, warn

            def f(warning):
                warn(warning)

            def g():
                warning("x")
        """
        self.assertCodemod(before, after)

    def test_warnings_warn_imported_bare_is_untouched(self) -> None:
        code = """
            from warnings import warn

            warn("x", DeprecationWarning)
        """
        self.assertCodemod(code, code)

    def test_untouched_file_is_byte_identical(self) -> None:
        source = "import warnings\r\n\r\nwarnings.warn( 'x' ,  Warning )   # odd spacing\r\n"
        result = ReplaceLoggingWarn(CodemodContext()).transform_module(cst.parse_module(source))
        self.assertEqual(result.code, source)

    def test_changed_file_keeps_formatting(self) -> None:
        source = "import logging\r\n\r\nif x :\r\n\tlogging.warn( 'x' )   # odd\r\n"
        result = ReplaceLoggingWarn(CodemodContext()).transform_module(cst.parse_module(source))
        self.assertEqual(result.code, source.replace(".warn(", ".warning("))
