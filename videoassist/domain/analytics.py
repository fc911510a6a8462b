"""The analytics dashboard's period and its CSV form. The figures themselves are
computed in SQL (``storage/analytics.py``)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from videoassist.errors import BadRequest

DEFAULT_DAYS = 30
MAX_DAYS = 366


def period(first: str | None, last: str | None, now: float) -> tuple[float, float]:
    """``[since, until)`` in Unix seconds from two UTC dates, both days included.

    Without ``last``: today; without ``first``: 30 days ending with ``last``.
    """
    end = _day(last, "to") if last else datetime.fromtimestamp(now, UTC).date()
    start = _day(first, "from") if first else end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRequest("from must not be after to.")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadRequest(f"The period is at most {MAX_DAYS} days.")
    return _midnight(start), _midnight(end + timedelta(days=1))


def _day(text: str, name: str) -> date:
    """A date written YYYY-MM-DD, years 2000 to 9998 (a day after the last one must
    still be a date)."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        day = None
    if day is None or len(text) != 10 or not 2000 <= day.year <= 9998:
        raise BadRequest(f"{name} must be a date, YYYY-MM-DD.")
    return day


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def to_csv(summary: dict[str, Any]) -> str:
    """The summary as long-form CSV, one figure a row: ``metric,dimension,value``.

    Spreadsheets pivot it as they like; an empty value is a figure with nothing to
    compute it from (no ended call, no answer...).
    """
    rows: list[tuple[str, str, Any]] = []
    since = datetime.fromtimestamp(summary["period"]["since"], UTC).date()
    until = datetime.fromtimestamp(summary["period"]["until"], UTC).date() - timedelta(days=1)
    rows += [("period_from", "", since.isoformat()), ("period_to", "", until.isoformat())]
    rows += [("calls_per_day", d["day"], d["calls"]) for d in summary["calls_per_day"]]
    rows += [("calls_total", "", summary["calls"]["total"]),
             ("calls_ended", "", summary["calls"]["ended"])]
    for name in ("duration_s", "invite_to_join_s"):
        spread = summary[name]
        rows += [(f"{name}_count", "", spread["count"]), (f"{name}_median", "", spread["median"]),
                 (f"{name}_p95", "", spread["p95"])]
    for role, counts in summary["invites"].items():
        rows += [(f"invites_{key}", role, value) for key, value in counts.items()]
    rows += [("snapshots_total", "", summary["snapshots"]["total"]),
             ("snapshots_per_call", "", summary["snapshots"]["per_call"])]
    for person in summary["people"]:
        who = person["username"] or "(by link)"
        rows.append(("calls_per_person", f"{person['role']}:{who}", person["calls"]))
    rows += [(f"first_time_fix_{key}", "", value)
             for key, value in summary["first_time_fix"].items()]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("metric", "dimension", "value"))
    for metric, dimension, value in rows:
        writer.writerow((metric, _safe(dimension), _cell(value)))
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    return _safe(str(value))


def _safe(text: str) -> str:
    """A spreadsheet never runs a cell as a formula (usernames are user input)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
