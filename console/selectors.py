"""Read-only queries for the console: the queue (keyset-paginated), counts,
neighbours for J/K, duplicate candidates, map features and model quality."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from django.conf import settings
from django.contrib.gis.db.models.functions import Distance
from django.contrib.gis.measure import D
from django.db.models import BooleanField, Count, FloatField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from reports import workflow
from reports.models import Category, Report, ReportSupporter, Team
from reports.photos import hamming
from reports.selectors import in_bbox
from reports.targets import overdue_days

S = Report.Status
# Sort key of the default queue: least confident first (unclassified = -1, i.e. first), then oldest.
# The same SQL text is indexed by reports/migrations/0003 so the planner can walk the index.
CONFIDENCE_SQL = 'COALESCE("reports_report"."predicted_probability", -1)'


def _statuses(statuses) -> str:
    return ", ".join(f"'{s}'" for s in sorted(statuses))


# The due date that applies now (reports.targets.current_due): triage while waiting for a
# person, fix once triaged, none once closed. Past it is overdue, and every sort puts these first.
# The same SQL text is indexed, after status, by reports/migrations/0016 (_all_if_few reads it).
DUE_SQL = (f'CASE WHEN "reports_report"."status" IN ({_statuses(workflow.INTAKE)}) '
           f'THEN "reports_report"."triage_due_at" WHEN "reports_report"."status" IN '
           f'({_statuses(workflow.CLOSED)}) THEN NULL ELSE "reports_report"."fix_due_at" END')
LATE_SQL = f"COALESCE(({DUE_SQL}) < now(), false)"
# The two sections' conditions, written on the bare due date (not on LATE_SQL, which is opaque
# to the planner) so the index and its statistics apply; ON_TIME_SQL is NOT LATE_SQL.
OVERDUE_SQL = f"({DUE_SQL}) < now()"
ON_TIME_SQL = f"(({DUE_SQL}) >= now() OR ({DUE_SQL}) IS NULL)"
SORTS = {
    # name: (key SQL columns, direction); the first column is "not late" (late, descending)
    "confidence": ([f"NOT {LATE_SQL}", CONFIDENCE_SQL, '"reports_report"."created_at"', '"reports_report"."id"'],
                   "asc"),
    "oldest": ([f"NOT {LATE_SQL}", '"reports_report"."created_at"', '"reports_report"."id"'], "asc"),
    "newest": ([LATE_SQL, '"reports_report"."created_at"', '"reports_report"."id"'], "desc"),
}
PAGE_SIZE = 50
CATEGORY_FIELDS = ("current", "final", "predicted", "citizen")
PALETTE = ["#d7263d", "#1b998b", "#f46036", "#2e86ab", "#8f2d56", "#3d5a80", "#4f772d", "#6c757d",
           "#e09f3e", "#7b2cbf", "#118ab2", "#ef476f"]


@dataclass(frozen=True)
class QueueFilters:
    status: str = S.NEEDS_REVIEW  # "" = any status, "open" = not closed
    category: str = ""  # slug
    category_field: str = "current"  # current (staff's, else model's, else citizen's) | final | predicted | citizen
    min_confidence: float | None = None  # model probability, 0-1
    max_confidence: float | None = None
    date_from: dt.date | None = None  # created, inclusive, local dates
    date_to: dt.date | None = None
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat (SRID 4326)
    disagree: bool = False
    possibly_not_issue: bool = False
    auto_triaged: bool = False
    assignee_id: int | None = None
    overdue: bool = False  # only reports past the due date that applies now
    team: str = ""  # a team's slug, or "none" for reports no rule has routed yet
    my_team_ids: tuple[int, ...] = ()  # "my team": these teams' reports, and those not routed yet
    sort: str = "confidence"


def _day_start(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


def _with_category(qs: QuerySet[Report], slug: str, which: str) -> QuerySet[Report]:
    """`which` label is the category `slug`: "current" is the one the queue and the map show
    (ReportQuerySet.with_current_category), the others one label each."""
    # The ids as literals, read first, rather than a subquery: the planner then estimates the
    # matches from the statistics on the COALESCE (reports/migrations/0016) instead of guessing
    # a join's (1 in 200 where 1 in 8 was true, which made it sort a seq scan instead of
    # walking the queue index; docs/BENCHMARKS.md, "Queue after overdue first").
    ids = list(Category.objects.filter(slug=slug).values_list("pk", flat=True))
    if which in ("final", "predicted", "citizen"):
        return qs.filter(**{f"{which}_category_id__in": ids})
    return qs.with_current_category().filter(current_category_id__in=ids)


def _status_q(status: str) -> Q:
    if not status:
        return Q()
    if status == "open":
        return ~Q(status__in=Report.CLOSED_STATUSES)
    return Q(status=status)


def filtered_reports(filters: QueueFilters, *, ignore_status: bool = False) -> QuerySet[Report]:
    """All reports matching the filters, unordered."""
    qs = Report.objects.all()
    if not ignore_status:
        qs = qs.filter(_status_q(filters.status))
    if filters.category:
        qs = _with_category(qs, filters.category, filters.category_field)
    if filters.min_confidence is not None or filters.max_confidence is not None:
        # On the sort expression, so the queue index can seek to the range.
        qs = qs.alias(confidence=RawSQL(CONFIDENCE_SQL, [], output_field=FloatField())).filter(
            predicted_probability__isnull=False)
        if filters.min_confidence is not None:
            qs = qs.filter(confidence__gte=filters.min_confidence)
        if filters.max_confidence is not None:
            qs = qs.filter(confidence__lte=filters.max_confidence)
    # Local-day bounds as timestamps (not created_at::date), so the created_at index applies.
    if filters.date_from:
        qs = qs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        qs = qs.filter(created_at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    if filters.bbox:
        qs = qs.filter(in_bbox(filters.bbox))
    if filters.disagree:
        qs = qs.filter(citizen_model_disagree=True)
    if filters.possibly_not_issue:
        qs = qs.filter(possibly_not_issue=True)
    if filters.auto_triaged:
        qs = qs.filter(auto_triaged=True)
    if filters.assignee_id:
        qs = qs.filter(assignment__assignee_id=filters.assignee_id)
    if filters.overdue:
        qs = qs.filter(RawSQL(OVERDUE_SQL, [], output_field=BooleanField()))
    if filters.team == "none":
        qs = qs.filter(team__isnull=True)
    elif filters.team:
        qs = qs.filter(team__slug=filters.team)
    if filters.my_team_ids:
        qs = qs.filter(Q(team_id__in=filters.my_team_ids) | Q(team__isnull=True))
    return qs


def _section(qs: QuerySet[Report], sort: str, *, late: bool, key: tuple | None,
             reverse: bool = False) -> QuerySet[Report]:
    """The overdue (or the other) reports, after `key` (before it when reverse) and ordered by
    the rest of the sort key: each section walks the queue index in that order (0003). The
    overdue flag itself depends on now(), so no index can hold it; the due date can (0016,
    which _all_if_few reads)."""
    columns, direction = SORTS[sort]
    rest = columns[1:]
    descending = (direction == "desc") != reverse
    qs = qs.filter(RawSQL(OVERDUE_SQL if late else ON_TIME_SQL, [], output_field=BooleanField()))
    if key is not None:  # a row-value comparison, answered from the composite index
        sql = f"({', '.join(rest)}) {'<' if descending else '>'} ({', '.join(['%s'] * len(rest))})"
        qs = qs.filter(RawSQL(sql, list(key[1:]), output_field=BooleanField()))
    return qs.order_by(*[RawSQL(c, []).desc() if descending else RawSQL(c, []).asc() for c in rest])


def _all_if_few(section: QuerySet[Report], limit: int) -> list[Report] | None:
    """The whole section in its order when it holds at most `limit` reports, else None.

    Asked on (status, due date), the order of report_queue_due_idx, so with one status it reads
    at most limit + 1 index entries, however many reports the status has. The planner cannot
    tell a status with almost no overdue report from one where most are (its statistics on
    status and on the due date are independent), so left to itself it walks the sort index
    through the whole status to find the few (80-100 ms at 25,000 reports of a status)."""
    ids = list(section.order_by("status", RawSQL(DUE_SQL, [])).values_list("pk", flat=True)[: limit + 1])
    if len(ids) > limit:
        return None
    return list(section.filter(pk__in=ids)) if ids else []


def _walk(qs: QuerySet[Report], sort: str, *, limit: int, key: tuple | None = None,
          reverse: bool = False, one_status: bool = False, overdue_only: bool = False) -> list[Report]:
    """Up to `limit` reports after `key` in the queue order (before it when reverse): overdue
    reports first, then the rest, one section at a time. `one_status`: qs keeps one status, so
    the overdue section is first looked for on report_queue_due_idx (_all_if_few).
    `overdue_only`: qs keeps only overdue reports, so the other section, empty, is not read
    (the planner would not see that and walk the whole status to find nothing)."""
    sections = [False, True] if reverse else [True, False]
    if key is not None:  # start in the key's own section
        sections = sections[sections.index(key[0] == (sort == "newest")):]
    rows: list[Report] = []
    for late in sections:
        if late or not overdue_only:
            section = _section(qs, sort, late=late, key=key, reverse=reverse)
            few = _all_if_few(section, limit - len(rows)) if late and one_status else None
            rows += few if few is not None else section[: limit - len(rows)]
            if len(rows) >= limit:
                break
        key = None  # the next section from its start
    return rows


def _one_status(filters: QueueFilters) -> bool:
    return filters.status not in ("", "open")


def sort_key(report: Report, sort: str) -> tuple:
    late = overdue_days(report) is not None
    first = late if sort == "newest" else not late
    if sort == "confidence":
        p = report.predicted_probability
        return (first, -1.0 if p is None else p, report.created_at, report.pk)
    return (first, report.created_at, report.pk)


def encode_cursor(key: tuple) -> str:
    return "~".join(v.isoformat() if isinstance(v, dt.datetime) else repr(v) for v in key)


def decode_cursor(cursor: str, sort: str) -> tuple | None:
    """Inverse of encode_cursor; None for anything malformed (the first page is shown)."""
    parts = cursor.split("~")
    if not parts or parts[0] not in ("True", "False"):
        return None
    first, parts = parts[0] == "True", parts[1:]
    try:
        if sort == "confidence" and len(parts) == 3:
            return (first, float(parts[0]), dt.datetime.fromisoformat(parts[1]), int(parts[2]))
        if sort != "confidence" and len(parts) == 2:
            return (first, dt.datetime.fromisoformat(parts[0]), int(parts[1]))
    except ValueError:
        return None
    return None


@dataclass
class Page:
    reports: list[Report]
    next_cursor: str | None


# What a queue row shows (console/queue.html, the overdue badge, the sort key, the bulk
# checkbox's pk:version); the rest of the wide row (photo fields, points, top-k) stays unread.
QUEUE_ROW_FIELDS = (
    "service_request_id", "version", "status", "address", "created_at", "triage_due_at", "fix_due_at",
    "citizen_category", "predicted_category", "final_category", "team", "predicted_label", "predicted_probability",
    "predicted_unknown", "citizen_model_disagree", "possibly_not_issue", "auto_triaged",
)


def _small_tables() -> tuple[dict[int, Category], dict[int, Team]]:
    """Every category and every team by id: two small tables (tens of rows), read in two
    one-table queries per page instead of joined. Each join a query carries costs the
    planner time on the 100k-row table (eight joins planned in 80-160 ms on a busy machine
    and executed in 1 ms; docs/BENCHMARKS.md, "Queue after overdue first")."""
    return {c.pk: c for c in Category.objects.all()}, {t.pk: t for t in Team.objects.all()}


def _attach_small_tables(reports: list[Report]) -> None:
    """Set each report's categories and team (and its spot check's and routing rule's) from
    _small_tables, as select_related would have, so templates read them without a query."""
    if not reports:
        return
    categories, teams = _small_tables()

    def attach(obj, field: str, table: dict) -> None:
        pk = getattr(obj, f"{field}_id")
        if pk in table:  # else (a row made since the look-up) the descriptor loads it as before
            setattr(obj, field, table[pk])

    for r in reports:
        for field in ("final_category", "predicted_category", "citizen_category"):
            attach(r, field, categories)
        attach(r, "team", teams)
        spot = getattr(r, "spot_check", None)  # select_related's cache; absent: no spot check
        if spot is not None:
            attach(spot, "category", categories)
        rule = r.routing_rule if Report.routing_rule.field.is_cached(r) else None  # the report page's
        if rule is not None:
            attach(rule, "category", categories)
            attach(rule, "team", teams)


def report_queue(*, filters: QueueFilters, cursor: str = "", page_size: int = PAGE_SIZE) -> Page:
    """One page of the queue. Keyset pagination: cost does not grow with the page number, and
    overdue reports are read before the rest rather than sorted in front of them. Joins only
    the person assigned and the spot check (one row each per report); categories and teams come
    from _small_tables."""
    qs = (filtered_reports(filters).select_related("assignment__assignee", "spot_check")
          .only(*QUEUE_ROW_FIELDS, "assignment__assignee__username", "spot_check__category",
                "spot_check__probability"))
    key = decode_cursor(cursor, filters.sort) if cursor else None
    rows = _walk(qs, filters.sort, limit=page_size + 1, key=key, one_status=_one_status(filters),
                 overdue_only=filters.overdue)
    more = len(rows) > page_size
    rows = rows[:page_size]
    _attach_small_tables(rows)
    _count_supporters(rows)
    return Page(reports=rows, next_cursor=encode_cursor(sort_key(rows[-1], filters.sort)) if more else None)


def _count_supporters(rows: list[Report]) -> None:
    """`supporter_count` on each row: the people who sent the same photo later
    (ReportSupporter), counted in one GROUP BY over the page's ids, not one query per row
    and not a join the queue's index walk would have to carry."""
    counts = dict(ReportSupporter.objects.filter(report_id__in=[r.pk for r in rows]).order_by()
                  .values("report_id").annotate(n=Count("pk")).values_list("report_id", "n")) if rows else {}
    for r in rows:
        r.supporter_count = counts.get(r.pk, 0)


def queue_neighbour(*, report: Report, filters: QueueFilters, previous: bool = False) -> Report | None:
    """The report after (or before) `report` in the queue order; `report` itself
    need not match the filters any more (it has just been triaged)."""
    qs = filtered_reports(filters).exclude(pk=report.pk).only("pk", "service_request_id")
    rows = _walk(qs, filters.sort, limit=1, key=sort_key(report, filters.sort), reverse=previous,
                 one_status=_one_status(filters), overdue_only=filters.overdue)
    return rows[0] if rows else None


@dataclass
class QueueCounts:
    by_status: dict[str, int]  # other filters applied, any status
    total: int  # all filters applied
    disagree: int
    possibly_not_issue: int
    auto_triaged: int


def queue_counts(filters: QueueFilters) -> QueueCounts:
    """One GROUP BY status over the rows matching every filter but status: tab counts,
    and, summed over the statuses the status filter selects, the flag counts."""
    active_flags = Q()
    for flag in ("citizen_model_disagree", "possibly_not_issue", "auto_triaged"):
        if getattr(filters, "disagree" if flag == "citizen_model_disagree" else flag):
            active_flags &= Q(**{flag: True})
    rows = (filtered_reports(replace(filters, disagree=False, possibly_not_issue=False, auto_triaged=False),
                             ignore_status=True)
            .order_by().values("status")
            .annotate(n=Count("pk"), matching=Count("pk", filter=active_flags) if active_flags else Count("pk"),
                      disagree=Count("pk", filter=Q(citizen_model_disagree=True) & active_flags),
                      possibly_not_issue=Count("pk", filter=Q(possibly_not_issue=True) & active_flags),
                      auto_triaged=Count("pk", filter=Q(auto_triaged=True) & active_flags)))
    by_status: dict[str, int] = {}
    sums = dict(total=0, disagree=0, possibly_not_issue=0, auto_triaged=0)
    for row in rows:
        by_status[row["status"]] = row["matching"]
        if _status_selected(row["status"], filters.status):
            sums["total"] += row["matching"]
            for key in ("disagree", "possibly_not_issue", "auto_triaged"):
                sums[key] += row[key]
    return QueueCounts(by_status=by_status, **sums)


def _status_selected(status: str, wanted: str) -> bool:
    if not wanted:
        return True
    if wanted == "open":
        return status not in Report.CLOSED_STATUSES
    return status == wanted


def console_report(reference: str) -> Report | None:
    """The report page's report: categories and teams from _small_tables rather than joined
    (fourteen joins planned in about 50 ms on a busy machine, for a one-row look-up), and the
    original of a duplicate read by its key when there is one (a self-join of the big table
    costs the planner more than that query)."""
    report = (Report.objects.select_related("verified_by", "assignment__assignee", "spot_check", "routing_rule__area")
              .defer("routing_rule__area__geometry")  # the rule's name is enough here
              .filter(service_request_id=reference.upper()).first())
    if report is not None:
        _attach_small_tables([report])
    return report


def report_events(report: Report):
    return report.events.select_related("actor").order_by("-created_at", "-id")


@dataclass
class DuplicateCandidate:
    report: Report
    distance_m: float
    photo_distance: int | None  # hamming distance of the 64-bit dHashes; 0 = same picture
    score: float  # lower is more likely a duplicate


def duplicate_candidates(report: Report, *, radius_m: float | None = None, limit: int = 12) -> list[DuplicateCandidate]:
    """Open reports within `radius_m` (default settings.DUPLICATE_RADIUS_M) whose current
    category is in the same Category.group, ranked by distance and photo similarity."""
    radius = float(radius_m) if radius_m is not None else duplicate_radius()
    qs = (Report.objects.filter(location__dwithin=(report.location, D(m=radius)))
          .exclude(pk=report.pk).exclude(status__in=Report.CLOSED_STATUSES)
          .select_related("final_category", "predicted_category", "citizen_category")
          .annotate(distance=Distance("location", report.location)))
    category = report.category
    if category is not None and category.group:
        qs = qs.current_category_in(Category.objects.filter(group=category.group))
    candidates = []
    for other in qs[:200]:
        bits = hamming(report.photo_phash, other.photo_phash) if report.photo_phash and other.photo_phash else None
        # Equal weight: at the edge of the radius, or half the hash bits different, each adds 1.
        score = other.distance.m / radius + (bits / 32 if bits is not None else 1.0)
        candidates.append(DuplicateCandidate(other, other.distance.m, bits, score))
    candidates.sort(key=lambda c: (c.score, c.report.created_at))
    return candidates[:limit]


def category_colours() -> dict[str, str]:
    return {slug: PALETTE[i % len(PALETTE)]
            for i, slug in enumerate(Category.objects.order_by("order", "name").values_list("slug", flat=True))}


def map_features(filters: QueueFilters, *, limit: int = 2000) -> dict:
    """GeoJSON FeatureCollection for the staff map: newest `limit` matches in the filters' bbox."""
    colours = category_colours()
    categories = {pk: (slug, name) for pk, slug, name in Category.objects.values_list("pk", "slug", "name")}
    rows = (filtered_reports(filters).with_current_category().order_by("-created_at")
            .annotate(lon=RawSQL('ST_X("reports_report"."location"::geometry)', [], output_field=FloatField()),
                      lat=RawSQL('ST_Y("reports_report"."location"::geometry)', [], output_field=FloatField()))
            .values_list("service_request_id", "status", "current_category_id", "predicted_probability",
                         "lon", "lat")[:limit])
    features = []
    for ref, status, category_id, probability, lon, lat in rows:
        slug, name = categories.get(category_id, ("", ""))
        features.append({
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"reference": ref, "status": status, "category": slug, "category_name": name,
                           "colour": colours.get(slug, "#444"), "confidence": probability,
                           "url": f"/console/reports/{ref}/"},
        })
    return {"type": "FeatureCollection", "features": features, "truncated": len(features) == limit}


def duplicate_radius() -> float:
    return settings.DUPLICATE_RADIUS_M
