"""reports.workflow: the lifecycle table on its own (pure: no database)."""
from __future__ import annotations

import pytest

from reports import workflow
from reports.workflow import By, Status as S, TransitionRefused, check_transition, targets


def test_every_status_is_open_or_closed_and_new_is_gone():
    assert workflow.OPEN | workflow.CLOSED == set(S) and not workflow.OPEN & workflow.CLOSED
    assert "new" not in S.values
    assert {s for s in S if not workflow.is_open(s)} == {S.FIXED, S.CLOSED, S.REJECTED, S.DUPLICATE}


def test_every_move_goes_between_known_statuses_and_somewhere_else():
    for by, moves in workflow.MOVES.items():
        for frm, tos in moves.items():
            assert frm in S.values and tos <= set(S.values), by
            assert frm not in tos, (by, frm)


def test_staff_triage_from_intake_only_with_a_staff_label():
    for frm in (S.PENDING, S.NEEDS_REVIEW):
        with pytest.raises(TransitionRefused, match="Verify the category first"):
            check_transition(frm, S.TRIAGED, has_category=False)
        check_transition(frm, S.TRIAGED, has_category=True)
        assert S.TRIAGED not in targets(frm, has_category=False)
        assert S.TRIAGED in targets(frm, has_category=True)


def test_the_classifier_triages_without_a_staff_label_but_only_from_pending():
    check_transition(S.PENDING, S.TRIAGED, by=By.CLASSIFIER, has_category=False)
    check_transition(S.PENDING, S.NEEDS_REVIEW, by=By.CLASSIFIER, has_category=False)
    with pytest.raises(TransitionRefused, match="Cannot go from needs_review to triaged"):
        check_transition(S.NEEDS_REVIEW, S.TRIAGED, by=By.CLASSIFIER, has_category=False)


def test_the_citizen_can_only_send_a_triaged_report_back_to_review_or_reopen_a_finished_one():
    assert workflow.MOVES[By.CITIZEN] == {S.TRIAGED: {S.NEEDS_REVIEW}, S.FIXED: {S.NEEDS_REVIEW},
                                          S.CLOSED: {S.NEEDS_REVIEW}}
    with pytest.raises(TransitionRefused):
        check_transition(S.NEEDS_REVIEW, S.TRIAGED, by=By.CITIZEN, has_category=False)
    for frm in (S.REJECTED, S.DUPLICATE, S.IN_PROGRESS):
        with pytest.raises(TransitionRefused):
            check_transition(frm, S.NEEDS_REVIEW, by=By.CITIZEN, has_category=True)


def test_duplicate_is_reached_only_by_merging_an_open_report():
    for frm in S:
        assert S.DUPLICATE not in targets(frm, has_category=True)
    assert set(workflow.MOVES[By.MERGE]) == workflow.OPEN
    with pytest.raises(TransitionRefused, match="allowed: none"):
        check_transition(S.FIXED, S.DUPLICATE, by=By.MERGE, has_category=True)


def test_leaving_a_closed_status_is_a_reopen_and_needs_the_permission():
    for frm in workflow.CLOSED:
        assert workflow.is_reopen(frm)
        assert targets(frm, has_category=False) == workflow.REOPEN_TARGETS
        assert targets(frm, has_category=False, may_reopen=False) == frozenset()
    assert not any(workflow.is_reopen(s) for s in workflow.OPEN)


def test_a_refusal_names_what_is_allowed():
    with pytest.raises(TransitionRefused, match="Cannot go from in_progress to rejected; allowed: closed, fixed, triaged"):
        check_transition(S.IN_PROGRESS, S.REJECTED, has_category=True)
    with pytest.raises(TransitionRefused, match="Unknown status 'new'"):
        check_transition(S.PENDING, "new", has_category=False)


def test_verifying_triages_a_report_waiting_for_review_and_leaves_others_where_they_are():
    assert workflow.after_verify(S.NEEDS_REVIEW) == workflow.after_verify(S.PENDING) == S.TRIAGED
    assert workflow.after_verify(S.IN_PROGRESS) is None and workflow.after_verify(S.TRIAGED) is None
