"""Server-side charts for the console: pure functions from numbers to inline SVG markup.

Standard library only (no Django, no database, no JS chart library), so a chart can be
tested by parsing what it returns. Every text that goes into the markup is escaped;
the caller may mark the result safe.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

# Colour-blind-safe (Okabe-Ito) and told apart by dash pattern too, never by colour alone.
STYLES = [("#d55e00", ""), ("#0072b2", "7 4"), ("#009e73", "2 3"), ("#cc79a7", "9 3 2 3")]
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 28, 76  # plot margins, px
GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Series:
    key: str  # stable id: the path's class ("series-<key>") and data-series attribute
    name: str  # legend text
    values: Sequence[float | None]  # one per week, 0-1; None: no data that week (a gap)
    notes: Sequence[str] = field(default=())  # one per week, e.g. "3 of 10"; the point's tooltip


@dataclass(frozen=True)
class Marker:
    at: dt.datetime | dt.date  # local time
    label: str  # e.g. the model version activated


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def week_label(start: dt.date) -> str:
    year, week, _ = start.isocalendar()
    return f"{year}-W{week:02d}"


def weekly_share_chart(*, weeks: Sequence[dt.date], series: Sequence[Series], markers: Sequence[Marker] = (),
                       title: str, description: str, chart_id: str = "chart") -> str:
    """An SVG line chart of shares (0-100 %) per week.

    `weeks` are the Mondays of consecutive ISO weeks, oldest first; each series has one
    value per week, drawn at the middle of its week as one <path> (a gap where a value is
    None) with a circle per value. Markers (e.g. model activations) are vertical lines at
    their exact time; those outside the weeks shown are left out. The <title> and <desc>
    (`description`, plus the markers in words) make it readable without sight; the caller
    should also show the numbers as a table.
    """
    if not weeks:
        raise ValueError("weekly_share_chart needs at least one week")
    for s in series:
        if len(s.values) != len(weeks) or (s.notes and len(s.notes) != len(weeks)):
            raise ValueError(f"series {s.key!r}: {len(s.values)} values for {len(weeks)} weeks")
    start, days = weeks[0], 7 * len(weeks)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: float) -> float:  # days since the first Monday
        return LEFT + plot_w * day / days

    def y(share: float) -> float:
        return TOP + plot_h * (1 - min(max(share, 0.0), 1.0))

    def days_since_start(when: dt.datetime | dt.date) -> float:
        if isinstance(when, dt.datetime):
            return (when.date() - start).days + (when.hour * 3600 + when.minute * 60 + when.second) / 86400
        return float((when - start).days)

    shown = [(m, days_since_start(m.at)) for m in markers]
    shown = [(m, d) for m, d in shown if 0 <= d <= days]
    title_id, desc_id = escape(f"{chart_id}-title"), escape(f"{chart_id}-desc")
    words = description
    if shown:
        words += " Vertical lines: " + "; ".join(
            f"{m.label} on {m.at:%Y-%m-%d}" for m, _ in shown) + "."
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="chart" '
           f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" aria-labelledby="{title_id} {desc_id}">',
           f'<title id="{title_id}">{escape(title)}</title>',
           f'<desc id="{desc_id}">{escape(words)}</desc>',
           '<g class="grid" font-size="11" fill="#555">']
    for g in GRID:
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y(g))}" y2="{_fmt(y(g))}" '
                   f'stroke="{"#888" if g == 0 else "#ddd"}" stroke-width="1"/>')
        out.append(f'<text x="{LEFT - 6}" y="{_fmt(y(g) + 4)}" text-anchor="end">{round(g * 100)}%</text>')
    for i, monday in enumerate(weeks):
        label = week_label(monday)
        out.append(f'<text x="{_fmt(x(7 * i + 3.5))}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                   f'<title>{label} (from {monday:%d %b %Y})</title>W{label[-2:]}</text>')
    out.append("</g>")
    out.append('<g class="markers" font-size="10" fill="#333">')
    for m, d in shown:
        mx = _fmt(x(d))
        out.append(f'<line class="marker" x1="{mx}" x2="{mx}" y1="{TOP - 12}" y2="{TOP + plot_h}" stroke="#333" '
                   f'stroke-width="1.5" stroke-dasharray="3 3"><title>{escape(m.label)} on {m.at:%Y-%m-%d}</title>'
                   f'</line>')
        out.append(f'<text x="{mx}" y="{TOP - 15}" text-anchor="middle">{escape(m.label)}</text>')
    out.append("</g>")
    for n, s in enumerate(series):
        colour, dash = STYLES[n % len(STYLES)]
        commands, points, pen_down = [], [], False
        for i, v in enumerate(s.values):
            if v is None:
                pen_down = False
                continue
            px, py = _fmt(x(7 * i + 3.5)), _fmt(y(v))
            commands.append(f"{'L' if pen_down else 'M'}{px} {py}")
            pen_down = True
            note = f": {s.notes[i]}" if s.notes else ""
            points.append(f'<circle cx="{px}" cy="{py}" r="3.5" fill="{colour}"><title>{escape(s.name)}, '
                          f'{week_label(weeks[i])}: {round(v * 100)}%{escape(note)}</title></circle>')
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<g class="series" data-series="{escape(s.key)}">'
                   f'<path class="series-{escape(s.key)}" d="{" ".join(commands)}" fill="none" stroke="{colour}" '
                   f'stroke-width="2"{dash_attr}/>{"".join(points)}</g>')
    out.append('<g class="legend" font-size="12" fill="#222">')
    lx, ly = LEFT, HEIGHT - 22
    for n, s in enumerate(series):
        colour, dash = STYLES[n % len(STYLES)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="2"'
                   f'{dash_attr}/><text x="{lx + 34}" y="{ly + 4}">{escape(s.name)}</text>')
        lx += 48 + 7 * len(s.name)
    if shown:
        out.append(f'<line x1="{lx}" x2="{lx + 28}" y1="{ly}" y2="{ly}" stroke="#333" stroke-width="1.5" '
                   f'stroke-dasharray="3 3"/><text x="{lx + 34}" y="{ly + 4}">model activated</text>')
    out.append("</g></svg>")
    return "".join(out)
