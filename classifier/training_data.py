"""From staff decisions to a training manifest, with a frozen, stratified holdout."""
from __future__ import annotations

import hashlib
import io
import json
import math
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from PIL import Image, ImageOps

from reports.models import Report

from .models import TrainingSplit
from .routing import NO_ISSUE


def verified_reports() -> QuerySet[Report]:
    """Reports with a staff-verified label: a final category, or rejected as not an issue.
    Duplicates are left out: near-identical photos would leak across the holdout."""
    return (Report.objects.filter(Q(final_category__isnull=False, verified_at__isnull=False)
                                  | Q(status=Report.Status.REJECTED))
            .exclude(status=Report.Status.DUPLICATE)
            .select_related("final_category"))


def training_label(report: Report) -> str:
    return NO_ISSUE if report.status == Report.Status.REJECTED else report.final_category.slug


def _order_key(report_id: int) -> str:
    """Stable pseudo-random order, so which reports go to the holdout does not depend on arrival order."""
    return hashlib.sha256(f"holdout:{report_id}".encode()).hexdigest()


def assign_splits() -> Counter:
    """Give every verified report without a split one; existing assignments never move.

    Per label, reports go to the holdout until it holds ceil(share * n) of
    them (HOLDOUT_SHARE), so the holdout stays stratified as labels grow.
    Returns the holdout count per label.
    """
    share = settings.HOLDOUT_SHARE
    with transaction.atomic():
        TrainingSplit.objects.select_for_update().all().exists()  # serialise concurrent assigners
        reports = list(verified_reports())
        by_label: dict[str, list[Report]] = {}
        for r in reports:
            by_label.setdefault(training_label(r), []).append(r)
        assigned = dict(TrainingSplit.objects.filter(report__in=reports).values_list("report_id", "split"))
        holdout = Counter()
        new = []
        for label, group in by_label.items():
            have = sum(1 for r in group if assigned.get(r.pk) == TrainingSplit.Split.HOLDOUT)
            want = math.ceil(share * len(group)) if len(group) >= settings.HOLDOUT_MIN_PER_LABEL else 0
            for r in sorted((r for r in group if r.pk not in assigned), key=lambda r: _order_key(r.pk)):
                split = TrainingSplit.Split.HOLDOUT if have < want else TrainingSplit.Split.TRAIN
                have += split == TrainingSplit.Split.HOLDOUT
                new.append(TrainingSplit(report=r, split=split))
            holdout[label] = have
        TrainingSplit.objects.bulk_create(new)
    return holdout


def export_training_set(out: Path) -> dict:
    """Write OUT/images/<report id>.jpg (the original, oriented, metadata-free) and
    OUT/manifest.jsonl (path, label, report_id, split). Returns a summary."""
    assign_splits()
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    splits = dict(TrainingSplit.objects.values_list("report_id", "split"))
    rows, counts = [], Counter()
    for report in verified_reports().order_by("pk"):
        target = images / f"{report.pk}.jpg"
        if not target.exists():
            with report.photo_original.storage.open(report.photo_original.name) as f:
                img = ImageOps.exif_transpose(Image.open(io.BytesIO(f.read()))).convert("RGB")
            img.save(target, "JPEG", quality=95)
        label, split = training_label(report), splits[report.pk]
        rows.append({"path": f"images/{target.name}", "label": label, "report_id": report.pk, "split": split})
        counts[(label, split)] += 1
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {
        "n_images": len(rows),
        "train_per_class": {lab: n for (lab, s), n in sorted(counts.items()) if s == "train"},
        "holdout_per_class": {lab: n for (lab, s), n in sorted(counts.items()) if s == "holdout"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
