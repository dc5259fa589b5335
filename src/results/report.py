"""The run report: one self-contained HTML page drawn from the run's `Summary`.

It is stored as the `REPORT` record so that a person can see at a glance what a run did: counts by
status and by event name, how many events carried each identifier, the match-quality grades and
why events were not accepted. Charts are SVG drawn here in Python, and the page loads nothing
(no scripts, fonts or style sheets from anywhere; a Content-Security-Policy forbids it), so it
opens the same in the Apify Console, a browser or an email attachment. It holds counts, Snap
event names, identifier keys and reasons only; none of them contains an identifier's value.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from ..events.quality import GRADES
from ..fields import IDENTIFIER_LABELS, MATCH_KEYS
from ..snap.quality_scores import SnapQuality
from .summary import Summary

REPORT_KEY = "REPORT"
CONTENT_TYPE = "text/html; charset=utf-8"

STATUS_COLORS: Mapping[str, str] = {
    "sent": "#2e7d32", "valid": "#43a047", "demo": "#1e88e5", "invalid": "#c62828", "failed": "#ef6c00",
    "skipped": "#8d8d8d",
}  # fmt: skip
GRADE_COLORS: Mapping[str, str] = {
    "excellent": "#1b5e20", "good": "#43a047", "fair": "#f9a825", "poor": "#ef6c00", "none": "#c62828",
}  # fmt: skip
OTHER_COLOR = "#6d4c41"
CHART_NAMES = 15
TOP_REASONS = 10

_STYLE = """
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:#1d1d1f;background:#f4f5f7}
header{background:#111;color:#fff;padding:24px 32px;border-bottom:6px solid #fffc00}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;color:#d0d0d0}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:8px}
.card{background:#fff;border-radius:10px;padding:12px 18px;min-width:120px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
.card b{display:block;font-size:26px}.card span{color:#555}
section{background:#fff;border-radius:10px;padding:16px 24px;margin-top:18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{font-size:18px;margin:0 0 10px}p.note{color:#555;margin:4px 0 10px}
svg{display:block;max-width:100%;height:auto}
table{border-collapse:collapse;width:100%;margin-top:10px;font-size:14px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #e5e5e5;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0 0;font-size:13px;color:#444}
.legend svg{display:inline-block;vertical-align:middle}
footer{color:#666;font-size:13px;margin-top:24px}
.stop{background:#fdecea;color:#8a1c1c;border-left:5px solid #c62828;padding:10px 14px;border-radius:6px}
"""


@dataclass(frozen=True, slots=True)
class Bar:
    """One row of a horizontal bar chart: a label, coloured segments, and the text at its end."""

    label: str
    segments: tuple[tuple[int, str], ...]
    text: str

    @property
    def total(self) -> int:
        return sum(value for value, _ in self.segments)


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _clip(text: str, limit: int = 44) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(bars: Sequence[Bar], *, scale: int | None = None, title: str) -> str:
    """An SVG chart of `bars`, each as long as its total against `scale` (the largest bar by default)."""
    if not bars:
        return '<p class="note">Nothing to show for this run.</p>'
    label_width, bar_width, row, top = 330, 560, 28, 6
    height = top * 2 + row * len(bars)
    largest = max(scale or 0, *(bar.total for bar in bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1000 {height}" width="1000" height="{height}" '
        f'role="img" aria-label="{escape(title)}">'
    ]
    for position, bar in enumerate(bars):
        y = top + position * row
        parts.append(f"<g><title>{escape(bar.label)}: {escape(bar.text)}</title>")
        parts.append(
            f'<text x="{label_width - 10}" y="{y + 18}" text-anchor="end" font-size="13" '
            f'fill="#333">{escape(_clip(bar.label))}</text>'
        )
        parts.append(f'<rect x="{label_width}" y="{y + 4}" width="{bar_width}" height="18" fill="#eef0f3" rx="3"/>')
        x = float(label_width)
        for value, color in bar.segments:
            width = bar_width * value / largest
            if width > 0:
                parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{width:.1f}" height="18" fill="{color}"/>')
            x += width
        parts.append(f'<text x="{label_width + bar_width + 10}" y="{y + 18}" font-size="13" fill="#222">')
        parts.append(f"{escape(bar.text)}</text></g>")
    parts.append("</svg>")
    return "".join(parts)


def _legend(colors: Iterable[tuple[str, str]]) -> str:
    items = "".join(
        f'<span><svg width="12" height="12" viewBox="0 0 12 12"><rect width="12" height="12" fill="{color}"/></svg> '
        f"{escape(name)}</span>"
        for name, color in colors
    )
    return f'<div class="legend">{items}</div>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    head = "".join(f'<th class="{"n" if index else ""}">{escape(name)}</th>' for index, name in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if index else ""}">{escape(str(cell))}</td>' for index, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _status_color(status: str) -> str:
    return STATUS_COLORS.get(status, OTHER_COLOR)


def _statuses(summary: Summary) -> str:
    total = summary.total
    bars = [
        Bar(status, ((count, _status_color(status)),), f"{count:,} ({_share(count, total)})")
        for status, count in summary.counts.most_common()
    ]
    return (
        "<section><h2>Events by status</h2>"
        '<p class="note">sent: accepted by Snap; valid: passed validation; demo: prepared, not sent; '
        "invalid: refused by a rule or by Snap; failed: could not be delivered; skipped: deliberately not sent.</p>"
        f"{bar_chart(bars, title='Events by status')}</section>"
    )


def _names(summary: Summary) -> str:
    ranked = sorted(summary.by_name.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    statuses = sorted({status for counts in summary.by_name.values() for status in counts})
    bars = [
        Bar(
            name,
            tuple((counts[status], _status_color(status)) for status in statuses),
            f"{sum(counts.values()):,}",
        )
        for name, counts in ranked[:CHART_NAMES]
    ]
    shown = "" if len(ranked) <= CHART_NAMES else f" The chart shows the {CHART_NAMES} most frequent."
    rows = [(name, *(counts[status] for status in statuses), sum(counts.values())) for name, counts in ranked]
    return (
        f'<section><h2>Events by name</h2><p class="note">Snap event names after mapping.{shown}</p>'
        f"{bar_chart(bars, title='Events by name')}{_legend((s, _status_color(s)) for s in statuses)}"
        f"{_table(['Event', *statuses, 'total'], rows)}</section>"
    )


def _coverage(summary: Summary) -> str:
    events = summary.events
    bars = [
        Bar(IDENTIFIER_LABELS.get(key, key), ((summary.identifiers[key], "#5c6bc0"),),
            f"{_share(summary.identifiers[key], events)} ({summary.identifiers[key]:,})")
        for key in MATCH_KEYS
    ]  # fmt: skip
    return (
        "<section><h2>Identifier coverage</h2>"
        f'<p class="note">Share of the {events:,} events that carried each identifier after normalization. '
        "Email or phone plus the click ID gives Snap its best match.</p>"
        f"{bar_chart(bars, scale=events, title='Identifier coverage')}</section>"
    )


def _quality(summary: Summary) -> str:
    events = summary.events
    bars = [
        Bar(grade, ((summary.quality[grade], GRADE_COLORS[grade]),),
            f"{summary.quality[grade]:,} ({_share(summary.quality[grade], events)})")
        for grade in GRADES
    ]  # fmt: skip
    return (
        "<section><h2>Match quality</h2>"
        '<p class="note">Graded from the identifiers each event carried: excellent is email, phone or mobile ad '
        "ID plus a click ID or Snap cookie; none is nothing Snap can match on.</p>"
        f"{bar_chart(bars, scale=events, title='Match quality')}</section>"
    )


def _reasons(summary: Summary) -> str:
    top = summary.errors.most_common(TOP_REASONS)
    if not top:
        return '<section><h2>Why events were not accepted</h2><p class="note">Every event was accepted.</p></section>'
    bars = [Bar(reason, ((count, STATUS_COLORS["invalid"]),), f"{count:,}") for reason, count in top]
    more = len(summary.errors) - len(top)
    note = f" {more:,} other reasons are not shown." if more > 0 else ""
    return (
        "<section><h2>Why events were not accepted</h2>"
        f'<p class="note">The most common reasons for invalid, failed and skipped events.{note}</p>'
        f"{bar_chart(bars, title='Most common reasons')}{_table(['Reason', 'events'], top)}</section>"
    )


def _our_grades(summary: Summary, event_name: str | None) -> str:
    grades = summary.quality_by_name.get(event_name or "")
    if not grades:
        return "not in this run"
    return ", ".join(f"{grade} {grades[grade]:,}" for grade in GRADES if grades[grade])


def _snap_quality(summary: Summary) -> str:
    """Snap's own Signal Readiness scores beside our per-event grades, or why Snap gave none."""
    quality = summary.snap_quality
    if not isinstance(quality, SnapQuality):
        return ""
    title = "<h2>Snap's event quality score (Signal Readiness)</h2>"
    if quality.unavailable:
        return (
            f'<section>{title}<p class="note">Not shown: {escape(quality.unavailable)} '
            "The run itself is not affected; our own grades are above.</p></section>"
        )
    sample = " Demo run: these are sample scores, not your pixel's." if quality.demo else ""
    rows = [
        (
            score.event_name or "(no event type)",
            " / ".join(part for part in (score.action_source, score.event_source) if part) or "-",
            score.score or "-",
            "; ".join(rec.label() for rec in score.recommendations) or "none",
            _our_grades(summary, score.event_name),
        )
        for score in quality.scores
    ]
    return (
        f'<section>{title}<p class="note">What Snap\'s Events Manager shows for this pixel, per event type and '
        "source, with Snap's recommendations (P0 first), beside the grades this run gave the same events from "
        f"the identifiers each carried. Snap's score covers all the pixel's recent events, not only this run.{sample}"
        "</p>"
        f"{_table(['Event', 'Source', 'Snap score', 'Snap recommendations', 'Our grades (this run)'], rows)}</section>"
    )


def _cards(summary: Summary) -> str:
    accepted = sum(summary.counts[status] for status in ("sent", "valid", "demo"))
    cards = (
        ("events", summary.total),
        ("accepted" if not summary.demo else "prepared (demo)", accepted),
        ("not accepted", summary.total - accepted),
        ("charged", summary.charged),
    )
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{value:,}</b><span>{escape(name)}</span></div>' for name, value in cards)
        + "</div>"
    )


def render_report(summary: Summary, *, error: str | None = None, generated: datetime | None = None) -> str:
    """The whole page as one string; the CSP allows only this page's own style block.

    `error` is why the run stopped early (a refused token, say), shown above the counts.
    """
    moment = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    style_hash = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'sha256-{style_hash}'; img-src data:; base-uri 'none'; form-action 'none'"
    mode = "demo run, nothing sent or charged" if summary.demo else "live run"
    body = [f'<p class="stop">The run stopped early: {escape(error)}</p>'] if error else []
    body += [_cards(summary), _statuses(summary)]
    if summary.events:
        body += [_names(summary), _coverage(summary), _quality(summary)]
    body.append(_snap_quality(summary))
    body.append(_reasons(summary))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Snapchat Conversions run report</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>Snapchat Conversions API run report</h1><p>Task {escape(summary.task)} · {mode} · "
        f"{moment}</p></header><main>{''.join(body)}"
        "<footer>Counts only: this report never contains an email, phone, name or any other identifier's value. "
        "Per-event rows are in the run's dataset.</footer></main></body></html>"
    )
