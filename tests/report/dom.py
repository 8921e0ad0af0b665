"""A small HTML reader for report pages: every start tag, the repo table's rows, the chart."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []  # text of each cell of #repos > tbody > tr
        self.row_attrs: list[list[dict[str, str | None]]] = []  # the cells' attributes
        self.svg: list[tuple[str, dict[str, str | None]]] = []  # tags inside svg#burndown
        self.table: dict[str, str | None] = {}
        self._in_table = self._in_body = self._in_svg = False
        self._row: list[str] | None = None
        self._attrs: list[dict[str, str | None]] = []
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if self._in_svg:
            self.svg.append((tag, a))
        if tag == "svg" and a.get("id") == "burndown":
            self._in_svg = True
        elif tag == "table" and a.get("id") == "repos":
            self._in_table, self.table = True, a
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self._row, self._attrs = [], []
        elif self._row is not None and tag == "td":
            self._cell = []
            self._attrs.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_svg = False
        elif tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self.row_attrs.append(self._attrs)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._in_table = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def count(self, tag: str) -> int:
        return sum(1 for t, _ in self.tags if t == tag)

    def polylines(self) -> dict[str, str]:
        """series name -> the points attribute of its line in the chart"""
        return {
            str(a.get("data-series")): str(a.get("points")) for t, a in self.svg if t == "polyline"
        }

    def repos(self) -> list[str]:
        return [row[0] for row in self.rows]
