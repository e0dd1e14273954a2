"""Which team fixes a report: routing rules (category, area, priority) and the one writer of
Report.team, for a rule's routing and for a person's override alike (the same audit event).

A rule matches a report when its category is blank or the report's category, and its area is
blank or covers the report's point. The lowest priority number wins; on a tie the more
specific rule wins (category and area, then category only, then area only, then a catch-all),
then the older rule, so the answer never depends on the order rows come back in.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.gis.geos import Point
from django.db.models import Q

from .models import Report, ReportEvent, RoutingRule, Team
from .services import record_event


def _specificity(rule: RoutingRule) -> int:
    """0 for category and area, 1 category only, 2 area only, 3 neither."""
    return (0 if rule.category_id else 2) + (0 if rule.area_id else 1)


def rule_matches(rule: RoutingRule, *, category_id: int | None, point: Point) -> bool:
    if rule.category_id is not None and rule.category_id != category_id:
        return False
    return rule.area_id is None or rule.area.geometry.covers(point)


def match_rule(rules: Iterable[RoutingRule], *, category_id: int | None, point: Point) -> RoutingRule | None:
    """The winning rule among `rules` for a report of `category_id` at `point` (longitude,
    latitude, SRID 4326), or None. Pure: reads only the rules given (and their areas)."""
    matching = [r for r in rules if r.active and rule_matches(r, category_id=category_id, point=point)]
    return min(matching, key=lambda r: (r.priority, _specificity(r), r.pk), default=None)


def candidate_rules(*, category_id: int | None, point: Point) -> list[RoutingRule]:
    """Active rules of active teams that could match: the database narrows by category and
    area (a spatial index on the areas), so only the few covering areas are loaded."""
    by_category = Q(category__isnull=True) | Q(category_id=category_id) if category_id else Q(category__isnull=True)
    return list(RoutingRule.objects.filter(by_category, active=True, team__active=True)
                .filter(Q(area__isnull=True) | Q(area__geometry__covers=point))
                .select_related("team", "category", "area"))


def assign_team(*, report: Report, actor=None, actor_label: str = "") -> Team | None:
    """Route `report` to the team the winning rule names, for its current category and point,
    and record an `assigned` event (field "team", old and new team slugs, the rule in the note)
    when the team changes. No matching rule clears the team. Returns the team.

    Call inside transaction.atomic() holding the report's row lock, after its category or
    status was set (the classifier's auto-triage, a staff verify or correction). The version
    is not bumped: the change that caused this did that already (or was the classifier's).
    """
    category = report.category
    point = Point(report.location.x, report.location.y, srid=4326)
    rule = match_rule(candidate_rules(category_id=category.pk if category else None, point=point),
                      category_id=category.pk if category else None, point=point)
    team = rule.team if rule else None
    _write_team(report=report, team=team, rule=rule, actor=actor,
                actor_label=actor_label or ("" if actor else "routing"),
                note=str(rule) if rule else "no routing rule matches")
    return team


SET_BY_HAND = "set by hand"  # the note of a team a person chose


def team_set_by_hand(*, report: Report, team: Team | None, actor) -> bool:
    """A person overrides the routing: `team` (None: no team) with no rule behind it, recorded
    as the same `assigned` event a rule's routing writes (actor `actor`, note "set by hand"), so
    forwarding to an outside body and the citizen's notice follow exactly as they do for a rule.
    Returns whether the team changed.

    Call inside transaction.atomic() holding the report's row lock; the caller bumps the version
    (this is a staff change, unlike the routing that follows a label)."""
    return _write_team(report=report, team=team, rule=None, actor=actor, actor_label="", note=SET_BY_HAND)


def routed_by_hand(report: Report) -> bool:
    """A team with no rule behind it: a person chose it (or the rule that did was deleted since).
    A staff verify that leaves the category as it was keeps such a team rather than re-route."""
    return report.team_id is not None and report.routing_rule_id is None


def _write_team(*, report: Report, team: Team | None, rule: RoutingRule | None, actor, actor_label: str,
                note: str) -> bool:
    """The one writer of Report.team: save the team and the rule that chose it (None by hand) and
    record the `assigned` event, when the team changes; nothing when it stays."""
    if (team.pk if team else None) == report.team_id:
        return False
    before = report.team.slug if report.team_id else ""
    report.team, report.routing_rule = team, rule
    report.save(update_fields=["team", "routing_rule", "updated_at"])
    record_event(report=report, actor=actor, actor_label=actor_label, action=ReportEvent.Action.ASSIGNED,
                 field="team", from_value=before, to_value=team.slug if team else "", note=note)
    return True
