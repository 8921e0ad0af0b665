"""Tests for codemods.utcnow.ReplaceUtcnow."""

from __future__ import annotations

import libcst as cst
from libcst.codemod import CodemodContext, CodemodTest

from codemods.utcnow import ReplaceUtcnow


class TestReplaceUtcnow(CodemodTest):
    TRANSFORM = ReplaceUtcnow

    def test_module_import(self) -> None:
        before = """
            import datetime

            started = datetime.datetime.utcnow()  # when we began
            seen = datetime.datetime.utcfromtimestamp(ts)
        """
        after = """
            import datetime

            started = datetime.datetime.now(datetime.timezone.utc)  # when we began
            seen = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
        """
        self.assertCodemod(before, after)

    def test_module_import_with_alias(self) -> None:
        before = """
            import datetime as dt

            now = dt.datetime.utcnow()
        """
        after = """
            import datetime as dt

            now = dt.datetime.now(dt.timezone.utc)
        """
        self.assertCodemod(before, after)

    def test_class_import_adds_timezone(self) -> None:
        before = """
            from datetime import datetime

            def stamp():
                return datetime.utcnow()

            def parse(ts):
                return datetime.utcfromtimestamp(ts)
        """
        after = """
            from datetime import timezone, datetime

            def stamp():
                return datetime.now(timezone.utc)

            def parse(ts):
                return datetime.fromtimestamp(ts, tz=timezone.utc)
        """
        self.assertCodemod(before, after)

    def test_class_import_with_existing_timezone_import(self) -> None:
        before = """
            from datetime import datetime as DT, timezone

            x = DT.utcnow()
        """
        after = """
            from datetime import datetime as DT, timezone

            x = DT.now(timezone.utc)
        """
        self.assertCodemod(before, after)

    def test_timezone_taken_by_pytz_uses_alias(self) -> None:
        before = """
            from datetime import datetime
            from pytz import timezone

            x = datetime.utcnow()
            y = datetime.utcnow()
            paris = timezone("Europe/Paris")
        """
        after = """
            from datetime import timezone as dt_timezone, datetime
            from pytz import timezone

            x = datetime.now(dt_timezone.utc)
            y = datetime.now(dt_timezone.utc)
            paris = timezone("Europe/Paris")
        """
        self.assertCodemod(before, after)

    def test_timezone_parameter_in_scope_uses_alias_only_there(self) -> None:
        before = """
            from datetime import datetime

            def f(timezone):
                return datetime.utcnow()

            def g():
                return datetime.utcnow()
        """
        after = """
            from datetime import timezone, timezone as dt_timezone, datetime

            def f(timezone):
                return datetime.now(dt_timezone.utc)

            def g():
                return datetime.now(timezone.utc)
        """
        self.assertCodemod(before, after)

    def test_both_names_taken_warns_and_skips(self) -> None:
        code = """
            from datetime import datetime

            def f(timezone, dt_timezone):
                return datetime.utcnow()
        """
        self.assertCodemod(
            code,
            code,
            expected_warnings=[
                "left datetime.utcnow()/utcfromtimestamp() unchanged: both 'timezone' and "
                "'dt_timezone' are already bound to something else"
            ],
        )

    def test_multiline_utcfromtimestamp_keeps_layout(self) -> None:
        before = """
            import datetime

            seen = datetime.datetime.utcfromtimestamp(
                event["ts"],  # seconds
            )
        """
        after = """
            import datetime

            seen = datetime.datetime.fromtimestamp(
                event["ts"],
                tz=datetime.timezone.utc,  # seconds
            )
        """
        self.assertCodemod(before, after)

    def test_unrelated_utcnow_is_untouched(self) -> None:
        code = """
            import arrow
            import pendulum

            def utcnow():
                return 0

            a = utcnow()
            b = arrow.utcnow()
            c = pendulum.now("UTC")
            d = clock.utcnow()
            e = datetime.utcnow()  # datetime never imported here
        """
        self.assertCodemod(code, code)

    def test_shadowed_datetime_is_untouched(self) -> None:
        code = """
            from datetime import datetime

            def f(datetime):
                return datetime.utcnow()
        """
        self.assertCodemod(code, code)

    def test_unusual_calls_are_untouched(self) -> None:
        code = """
            from datetime import datetime

            factory = datetime.utcnow
            bad = datetime.utcnow(1)
            kw = datetime.utcfromtimestamp(timestamp=1)
            star = datetime.utcfromtimestamp(*args)
        """
        self.assertCodemod(code, code)

    def test_untouched_file_is_byte_identical(self) -> None:
        source = (
            "import datetime\r\n\r\nx = datetime.datetime.now( )   # odd\r\nif x :\r\n\ty = x\r\n"
        )
        result = ReplaceUtcnow(CodemodContext()).transform_module(cst.parse_module(source))
        self.assertEqual(result.code, source)
