"""Scheduled retraining: export -> train (subprocess) -> evaluate both on the frozen holdout -> gate -> promote.

Both models are evaluated on the whole holdout and on each source's part of it
(`local`: the council's own verified reports; `bootstrap`: imported examples);
the gate judges the whole holdout and, once it holds two classes of them, the
council's own photos, and promotes only if every applied gate passes.

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
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone

from .model_files import local_directory
from .models import ModelVersion, RetrainRun
from .runs import retrain_run_finish, retrain_run_skipped, retrain_run_start
from .services import model_activate, model_register
from .thresholds import HOLDOUT_PREDICTIONS_FILE
from .training_data import export_training_set, label_photos

logger = logging.getLogger(__name__)
LOCK_KEY = 0x43495649  # advisory lock id for retraining ("CIVI")
SOURCES = ("local", "bootstrap")  # the manifest's `source` values (training.data.SOURCES)
SLICE_NAMES = {"overall": "whole holdout", "local": "this council's photos", "bootstrap": "bootstrap photos"}


@dataclass
class GateResult:
    promote: bool
    reasons: list[str] = field(default_factory=list)
    slices: dict[str, bool] = field(default_factory=dict)  # holdout slice -> passed, for the gates applied


def photos_right(metrics: dict) -> dict[str, int] | None:
    """Holdout photos each class got right (recall x support), or None when the metrics carry no
    supports (summaries from before they did)."""
    per_class = metrics.get("per_class", {})
    if not per_class or any(s.get("support") is None for s in per_class.values()):
        return None
    return {c: round((s["recall"] or 0.0) * s["support"]) for c, s in per_class.items()}


def gate(candidate: dict, active: dict | None, *, max_f1_drop: float, max_recall_drop: float,
         min_f1: float, grace_photos: int = 0) -> GateResult:
    """Champion/challenger decision on metrics from the same holdout.

    Promote when macro-F1 is not worse than the active model's by more than
    `max_f1_drop` and no class's recall drops by more than `max_recall_drop`
    (classes both models know). With no active model, macro-F1 must reach `min_f1`.
    A drop counts only when the candidate gets more than `grace_photos` more holdout photos
    wrong than the active model (overall for macro-F1, within the class for its recall): on the
    council's first holdout photos (a handful) one photo flipping moves either by tens of points,
    and that is noise, not evidence.
    """
    reasons = []
    if active is None:
        ok = candidate["macro_f1"] >= min_f1
        reasons.append(f"first model: macro-F1 {candidate['macro_f1']:.3f} {'>=' if ok else '<'} floor {min_f1:.3f}")
        return GateResult(ok, reasons)
    ok = True
    right, right_before = photos_right(candidate), photos_right(active)
    comparable = grace_photos > 0 and right is not None and right_before is not None

    def within_grace(lost: int) -> bool:
        return comparable and lost <= grace_photos

    drop = active["macro_f1"] - candidate["macro_f1"]
    # Photos lost class by class: a gain in one class does not buy a loss in another.
    more_wrong = sum(max(0, right_before.get(c, 0) - n) for c, n in right.items()) if comparable else 0
    if drop > max_f1_drop and not within_grace(more_wrong):
        ok = False
        reasons.append(f"macro-F1 {candidate['macro_f1']:.3f} is {drop:.3f} below the active {active['macro_f1']:.3f} (limit {max_f1_drop})")
    elif drop > max_f1_drop:
        reasons.append(f"macro-F1 {candidate['macro_f1']:.3f} vs active {active['macro_f1']:.3f}: {more_wrong} more photo(s) "
                       f"wrong, within the grace of {grace_photos}")
    else:
        reasons.append(f"macro-F1 {candidate['macro_f1']:.3f} vs active {active['macro_f1']:.3f}: within {max_f1_drop}")
    for cls, stats in candidate["per_class"].items():
        if cls not in active["per_class"]:
            continue
        recall_drop = active["per_class"][cls]["recall"] - stats["recall"]
        lost = right_before.get(cls, 0) - right[cls] if comparable else 0
        if recall_drop > max_recall_drop and not within_grace(lost):
            ok = False
            reasons.append(f"recall of {cls} drops {recall_drop:.3f} ({active['per_class'][cls]['recall']:.3f} -> {stats['recall']:.3f}; limit {max_recall_drop})")
    return GateResult(ok, reasons)


def gates_to_apply(summary: dict) -> list[str]:
    """The holdout slices the gate judges: the whole holdout always, and the council's own
    photos (`local`) as well once their part of the holdout holds at least two classes."""
    local = summary.get("per_source", {}).get("local", {}).get("holdout_per_class", {})
    return ["overall"] + (["local"] if sum(1 for n in local.values() if n) >= 2 else [])


def gate_slices(candidate: dict[str, dict], active: dict[str, dict] | None, *, slices: list[str],
                max_f1_drop: float, max_recall_drop: float, min_f1: float, grace_photos: int = 0) -> GateResult:
    """`gate` on each holdout slice in `slices` (metrics keyed by slice: "overall", "local",
    "bootstrap"); promote only if every one passes. Reasons are prefixed with the slice."""
    promote, reasons, passed = True, [], {}
    for name in slices:
        result = gate(candidate[name], active[name] if active else None, max_f1_drop=max_f1_drop,
                      max_recall_drop=max_recall_drop, min_f1=min_f1, grace_photos=grace_photos)
        promote &= result.promote
        passed[name] = result.promote
        reasons += [f"{SLICE_NAMES.get(name, name)}: {r}" for r in result.reasons]
    return GateResult(promote, reasons, passed)


def _python() -> str:
    return settings.TRAINING_PYTHON or sys.executable


def _run(args: list[str], log: Path) -> str:
    """Run `python -m training ...`; stdout is returned, stderr appended to `log` and, when this
    process has a terminal (`make demo`'s first training), shown there too: progress bars included."""
    echo = sys.stderr.isatty()
    with log.open("ab") as err:
        proc = subprocess.Popen([_python(), "-m", "training", *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=settings.BASE_DIR)

        def tee() -> None:
            for chunk in iter(lambda: proc.stderr.read1(65536), b""):
                err.write(chunk)
                err.flush()  # the log is readable while training runs
                if echo:
                    sys.stderr.buffer.write(chunk)
                    sys.stderr.flush()

        thread = threading.Thread(target=tee, daemon=True)
        thread.start()
        out = proc.stdout.read().decode()
        proc.wait()
        thread.join()
    if proc.returncode != 0:
        raise RuntimeError(f"training {args[0]} failed (exit {proc.returncode}); see {log}")
    return out


def _evaluate_slices(model_dir: Path, manifest: Path, summary: dict, log: Path, *, plots_dir: Path,
                     predictions: Path | None = None) -> dict[str, dict]:
    """Holdout metrics keyed by slice: "overall", and each source with holdout rows, from one
    `training evaluate` pass over the holdout (plots in plots_dir/overall and plots_dir/overall/<source>).
    When one source holds the whole holdout its slice is the overall one.
    `predictions`: where the whole holdout's per-photo probabilities go (derived thresholds)."""
    args = ["evaluate", "--model", str(model_dir), "--data", str(manifest), "--split", "holdout",
            "--plots-dir", str(plots_dir / "overall"), "--json", "--by-source"]
    out = _run(args + (["--predictions", str(predictions)] if predictions else []), log)
    overall = json.loads(out.strip().splitlines()[-1])
    by_source = overall.pop("by_source", {})
    sources = [s for s in SOURCES if summary.get("per_source", {}).get(s, {}).get("holdout_per_class")]
    slices = {"overall": overall}
    for source in sources:
        slices[source] = overall if len(sources) == 1 else by_source[source]
    return slices


def _by_source(slices: dict[str, dict] | None) -> dict[str, dict] | None:
    return {s: slices[s] for s in SOURCES if s in slices} if slices else None


def _try_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        return cursor.fetchone()[0]


def data_shortfalls(*, train_per_class: dict[str, int], holdout: int) -> list[str]:
    """Why no model may be trained and promoted on this data (empty: enough). Every class
    needs RETRAIN_MIN_LABELS_PER_CLASS training photos and the holdout RETRAIN_MIN_HOLDOUT
    photos: a gate judged on a handful of photos passes by luck. "Retrain now" too."""
    need = settings.RETRAIN_MIN_LABELS_PER_CLASS
    short = [f"{label} has {n}" for label, n in sorted(train_per_class.items()) if n < need]
    reasons = []
    if len(train_per_class) < 2:
        reasons.append(f"a model needs at least two classes to train on; there {'is' if train_per_class else 'are'} "
                       f"{len(train_per_class)}")
    if short:
        reasons.append(f"each class needs {need} verified photos to train on ({', '.join(short)})")
    if holdout < settings.RETRAIN_MIN_HOLDOUT:
        reasons.append(f"a model is judged on at least {settings.RETRAIN_MIN_HOLDOUT} holdout photos; "
                       f"the holdout has {holdout}")
    return reasons


def promotion_shortfalls() -> list[str]:
    """data_shortfalls of the labels as the next export would take them (the model panel)."""
    exported = [p for p in label_photos().values() if p.exported]
    return data_shortfalls(train_per_class={p.label: p.train for p in exported},
                           holdout=sum(p.holdout for p in exported))


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
    if short := data_shortfalls(train_per_class=summary["train_per_class"],
                                holdout=sum(summary["holdout_per_class"].values())):
        report.update(outcome="skipped", reason="too little data for a model to be promoted: " + "; ".join(short))
        return _write(report, run_dir)

    manifest = run_dir / "data" / "manifest.jsonl"
    version = "m" + started.strftime("%Y%m%d-%H%M%S")
    candidate_dir = run_dir / "candidate"
    args = ["train", "--data", str(manifest), "--out", str(candidate_dir), "--version", version,
            "--feature-cache", str(settings.TRAINING_FEATURE_CACHE), *settings.TRAINING_ARGS]
    if active:
        args += ["--parent-version", active.version]
    _run(args, log)

    has_holdout = bool(summary["holdout_per_class"])
    plots = run_dir / "plots"
    # The candidate's holdout predictions travel in its model directory: activation derives
    # the auto-triage thresholds from them (classifier.quality).
    candidate_slices = (_evaluate_slices(candidate_dir, manifest, summary, log, plots_dir=plots / "candidate",
                                         predictions=candidate_dir / HOLDOUT_PREDICTIONS_FILE)
                        if has_holdout else None)
    active_slices = (_evaluate_slices(local_directory(active), manifest, summary, log, plots_dir=plots / "active")
                     if (active and has_holdout) else None)
    candidate_metrics = candidate_slices["overall"] if candidate_slices else None
    active_metrics = active_slices["overall"] if active_slices else None
    gates = gates_to_apply(summary) if has_holdout else []
    if candidate_slices is None:
        decision = GateResult(False, ["no holdout yet (too few verified labels per class); kept as candidate"])
    else:
        decision = gate_slices(candidate_slices, active_slices, slices=gates,
                               max_f1_drop=settings.RETRAIN_MAX_MACRO_F1_DROP,
                               max_recall_drop=settings.RETRAIN_MAX_RECALL_DROP, min_f1=settings.RETRAIN_MIN_MACRO_F1,
                               grace_photos=settings.RETRAIN_GATE_GRACE_PHOTOS)
    report.update(candidate_version=version, candidate_holdout=candidate_metrics,
                  active_holdout=active_metrics, candidate_holdout_by_source=_by_source(candidate_slices),
                  active_holdout_by_source=_by_source(active_slices), gates_applied=gates,
                  decision=asdict(decision))
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
    if report.get("gates_applied"):
        lines += ["", f"Gates applied: {', '.join(SLICE_NAMES[g] for g in report['gates_applied'])}", "",
                  "| holdout slice | images | candidate macro-F1 | active macro-F1 |", "|---|---|---|---|"]
        candidate, active = report.get("candidate_holdout_by_source") or {}, report.get("active_holdout_by_source") or {}
        slices = [("overall", report.get("candidate_holdout"), report.get("active_holdout"))]
        slices += [(s, candidate[s], active.get(s)) for s in SOURCES if s in candidate]
        for name, c, a in slices:
            active_f1 = f"{a['macro_f1']:.3f}" if a else "—"
            lines.append(f"| {SLICE_NAMES[name]} | {c['n_images']} | {c['macro_f1']:.3f} | {active_f1} |")
    lines += ["", f"Active model before: {report['active_version'] or 'none'}",
              f"Training data: {report['data']}"]
    (run_dir / "report.md").write_text("\n".join(lines) + "\n")
    logger.info("retrain %s: %s", run_dir.name, report["outcome"])
    return report
