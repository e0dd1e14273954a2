"""Scheduled retraining: export -> train (subprocess) -> evaluate both on the frozen holdout -> gate -> promote.

The web environment never imports torch: training and evaluation run as
`TRAINING_PYTHON -m training ...` subprocesses and hand back files. A
PostgreSQL advisory lock keeps two runs from overlapping (it is released
when the connection closes, so a crashed run cannot wedge the next one),
and the active model only changes in the last step, through
`model_activate`, so a crash anywhere before leaves it untouched.
"""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .models import ModelVersion, RetrainRun
from .runs import retrain_run_finish, retrain_run_skipped, retrain_run_start
from .services import model_activate, model_register
from .training_data import export_training_set

logger = logging.getLogger(__name__)
LOCK_KEY = 0x43495649  # advisory lock id for retraining ("CIVI")


@dataclass
class GateResult:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def gate(candidate: dict, active: dict | None, *, max_f1_drop: float, max_recall_drop: float,
         min_f1: float) -> GateResult:
    """Champion/challenger decision on metrics from the same holdout.

    Promote when macro-F1 is not worse than the active model's by more than
    `max_f1_drop` and no class's recall drops by more than `max_recall_drop`
    (classes both models know). With no active model, macro-F1 must reach `min_f1`.
    """
    reasons = []
    if active is None:
        ok = candidate["macro_f1"] >= min_f1
        reasons.append(f"first model: macro-F1 {candidate['macro_f1']:.3f} {'>=' if ok else '<'} floor {min_f1:.3f}")
        return GateResult(ok, reasons)
    ok = True
    drop = active["macro_f1"] - candidate["macro_f1"]
    if drop > max_f1_drop:
        ok = False
        reasons.append(f"macro-F1 {candidate['macro_f1']:.3f} is {drop:.3f} below the active {active['macro_f1']:.3f} (limit {max_f1_drop})")
    else:
        reasons.append(f"macro-F1 {candidate['macro_f1']:.3f} vs active {active['macro_f1']:.3f}: within {max_f1_drop}")
    for cls, stats in candidate["per_class"].items():
        if cls not in active["per_class"]:
            continue
        recall_drop = active["per_class"][cls]["recall"] - stats["recall"]
        if recall_drop > max_recall_drop:
            ok = False
            reasons.append(f"recall of {cls} drops {recall_drop:.3f} ({active['per_class'][cls]['recall']:.3f} -> {stats['recall']:.3f}; limit {max_recall_drop})")
    return GateResult(ok, reasons)


def _python() -> str:
    return settings.TRAINING_PYTHON or sys.executable


def _run(args: list[str], log: Path) -> str:
    """Run `python -m training ...`; stdout is returned, stderr appended to `log`."""
    with log.open("a") as err:
        proc = subprocess.run([_python(), "-m", "training", *args], stdout=subprocess.PIPE, stderr=err,
                              text=True, cwd=settings.BASE_DIR)
    if proc.returncode != 0:
        raise RuntimeError(f"training {args[0]} failed (exit {proc.returncode}); see {log}")
    return proc.stdout


def _evaluate(model_dir: Path, manifest: Path, log: Path) -> dict:
    out = _run(["evaluate", "--model", str(model_dir), "--data", str(manifest), "--split", "holdout", "--json"], log)
    return json.loads(out.strip().splitlines()[-1])


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        return cursor.fetchone()[0]


def _unlock() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def retrain(*, force: bool = False, trigger: str = RetrainRun.Trigger.OTHER, reason: str = "",
            requested_by=None, run_id: int | None = None) -> dict:
    """One retraining run, recorded as a RetrainRun (why, who, outcome). Returns (and writes
    to RETRAIN_DIR/<run>/report.json) what happened.

    `run_id`: carry out that queued request (classifier.runs.retrain_request), with its own
    trigger, reason and force. Without it (the nightly `manage.py retrain`) a request still
    pending is served; otherwise a new record with `trigger` and `reason` is made.
    """
    if not _try_lock():
        why = "another retraining run holds the lock"
        if run_id is None:  # a queued request stays pending for the run that holds the lock
            retrain_run_skipped(trigger=trigger, reason=reason or why, requested_by=requested_by, why=why)
        return {"outcome": "skipped", "reason": why}
    try:
        run = retrain_run_start(run_id=run_id, trigger=trigger, reason=reason or RetrainRun.Trigger(trigger).label,
                                requested_by=requested_by, force=force)
        if run is None:
            return {"outcome": "skipped", "reason": f"retrain request {run_id} was already served"}
        try:
            report = _retrain_locked(force=run.force or force)
        except BaseException as exc:
            retrain_run_finish(run=run, error=exc)
            raise
        report["retrain_run"] = run.pk
        retrain_run_finish(run=run, report=report)
        return report
    finally:
        _unlock()


def _retrain_locked(*, force: bool) -> dict:
    started = timezone.now()
    run_dir = settings.RETRAIN_DIR / started.strftime("%Y%m%d-%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "training.log"
    active = ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).first()

    summary = export_training_set(run_dir / "data")
    n_train = sum(summary["train_per_class"].values())
    trained_on = (active.metadata.get("training_data", {}).get("n_images", 0) if active else 0)
    new_labels = n_train - trained_on
    report: dict = {"started": started.isoformat(), "run_dir": str(run_dir), "data": summary,
                    "active_version": active.version if active else None, "new_labels": new_labels}
    if not force and (new_labels < settings.RETRAIN_MIN_NEW_LABELS or len(summary["train_per_class"]) < 2):
        report.update(outcome="skipped", reason=f"{new_labels} new verified labels; need "
                      f"{settings.RETRAIN_MIN_NEW_LABELS} and at least two classes")
        return _write(report, run_dir)

    manifest = run_dir / "data" / "manifest.jsonl"
    version = "m" + started.strftime("%Y%m%d-%H%M%S")
    candidate_dir = run_dir / "candidate"
    args = ["train", "--data", str(manifest), "--out", str(candidate_dir), "--version", version,
            *settings.TRAINING_ARGS]
    if active:
        args += ["--parent-version", active.version]
    _run(args, log)

    has_holdout = bool(summary["holdout_per_class"])
    candidate_metrics = _evaluate(candidate_dir, manifest, log) if has_holdout else None
    active_metrics = _evaluate(active.directory, manifest, log) if (active and has_holdout) else None
    if candidate_metrics is None:
        decision = GateResult(False, ["no holdout yet (too few verified labels per class); kept as candidate"])
    else:
        decision = gate(candidate_metrics, active_metrics, max_f1_drop=settings.RETRAIN_MAX_MACRO_F1_DROP,
                        max_recall_drop=settings.RETRAIN_MAX_RECALL_DROP, min_f1=settings.RETRAIN_MIN_MACRO_F1)
    report.update(candidate_version=version, candidate_holdout=candidate_metrics,
                  active_holdout=active_metrics, decision=asdict(decision))
    mv = model_register(source_dir=candidate_dir, metrics=candidate_metrics or {})
    if decision.promote:
        model_activate(version=mv.version)
        report["outcome"] = "promoted"
    else:
        mv.status = ModelVersion.Status.REJECTED if candidate_metrics else ModelVersion.Status.CANDIDATE
        mv.save(update_fields=["status"])
        report["outcome"] = "rejected" if candidate_metrics else "candidate"
    report["finished"] = timezone.now().isoformat()
    ModelVersion.objects.filter(pk=mv.pk).update(promotion_report=report)
    return _write(report, run_dir)


def _write(report: dict, run_dir: Path) -> dict:
    (run_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    lines = [f"# Retraining run {run_dir.name}", "", f"**Outcome: {report['outcome']}**", ""]
    if "reason" in report:
        lines.append(report["reason"])
    for reason in report.get("decision", {}).get("reasons", []):
        lines.append(f"- {reason}")
    lines += ["", f"Active model before: {report['active_version'] or 'none'}",
              f"Training data: {report['data']}"]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    logger.info("retrain %s: %s", run_dir.name, report["outcome"])
    return report
