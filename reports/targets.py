"""Response targets: when a report is due to be triaged and fixed, in working days.

A working day is a weekday that is neither a bank holiday of the council's nation
(`holidays.UK(subdiv=settings.COUNCIL_NATION)`) nor one of the council's own closed days
(NonWorkingDay, e.g. the Christmas closure). A target of N working days is due at the end
of the Nth working day after the day the report came in (local time), so a Friday report
with a one-day target is due on Monday evening and the public is told "by Monday".
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Container
from functools import lru_cache

import holidays
from django.conf import settings
from django.utils import timezone

# Counting stops here: a target never spans more days than this (Category's validator is lower).
_MAX_SPAN_DAYS = 2000


def add_working_days(start: dt.date, days: int, *, closed: Container[dt.date]) -> dt.date:
    """The `days`-th working day after `start` (`start` itself when `days` is 0 and it is a
    working day, else the next one). Weekends are never working days; `closed` holds the
    other days off (bank holidays, the council's closures). Pure."""
    if days < 0:
        raise ValueError("days must be zero or more")

    def working(day: dt.date) -> bool:
        return day.weekday() < 5 and day not in closed

    day, left = start, days
    if left == 0 and working(day):
        return day
    for _ in range(_MAX_SPAN_DAYS):
        day += dt.timedelta(days=1)
        if working(day):
            left -= 1
            if left <= 0:
                return day
    raise ValueError(f"no working day within {_MAX_SPAN_DAYS} days of {start}")


def end_of_day(day: dt.date) -> dt.datetime:
    """The last moment of `day` in the council's time zone (right on both sides of a clock change)."""
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=timezone.get_default_timezone())


@lru_cache(maxsize=8)
def _bank_holidays(nation: str) -> holidays.HolidayBase:
    return holidays.UK(subdiv=nation)  # expands to each year on first lookup


class ClosedDays(Container):
    """The council's days off besides weekends: its nation's bank holidays and NonWorkingDay."""

    def __init__(self, *, nation: str | None = None, extra: Container[dt.date] = ()):
        self.bank = _bank_holidays(nation or settings.COUNCIL_NATION)
        self.extra = extra

    def __contains__(self, day) -> bool:
        return day in self.bank or day in self.extra


def council_closed_days() -> ClosedDays:
    """ClosedDays with the council's override list read once from the database."""
    from .models import NonWorkingDay

    return ClosedDays(extra=frozenset(NonWorkingDay.objects.values_list("date", flat=True)))


def due_at(created_at: dt.datetime, days: int, *, closed: Container[dt.date]) -> dt.datetime:
    local_day = timezone.localtime(created_at, timezone.get_default_timezone()).date()
    return end_of_day(add_working_days(local_day, days, closed=closed))


def report_set_due_dates(report, *, closed: Container[dt.date] | None = None) -> list[str]:
    """Set `triage_due_at` and `fix_due_at` on `report` from its created_at and its category
    (the staff view, Report.category) and return the fields that changed, for the caller's
    save. No category, no targets. Called where a report comes in (report_create) or changes
    category (report_transition with a category field, staff and citizen labels)."""
    category = report.category
    if category is None:
        triage = fix = None
    else:
        closed = council_closed_days() if closed is None else closed
        came_in = report.created_at or timezone.now()  # not saved yet: it comes in now
        triage = due_at(came_in, category.triage_target_days, closed=closed)
        fix = due_at(came_in, category.fix_target_days, closed=closed)
    changed = [name for name, value in (("triage_due_at", triage), ("fix_due_at", fix))
               if getattr(report, name) != value]
    report.triage_due_at, report.fix_due_at = triage, fix
    return changed


def current_due(report) -> dt.datetime | None:
    """The due date that applies now: triage while the report waits for a person, fix once
    triaged; none once closed. console.selectors.LATE_SQL says the same in SQL."""
    from . import workflow

    if not workflow.is_open(report.status):
        return None
    return report.triage_due_at if report.status in workflow.INTAKE else report.fix_due_at


def overdue_days(report, *, now: dt.datetime | None = None) -> int | None:
    """Whole days (rounded up) past the due date that applies now; None when not overdue."""
    due = current_due(report)
    now = now or timezone.now()
    if due is None or now <= due:
        return None
    return -((due - now) // dt.timedelta(days=1))
