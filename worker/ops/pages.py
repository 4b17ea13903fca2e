"""The status page's HTML: plain strings, every value from the database escaped.

Light on purpose: one stylesheet inline, forms for the actions, SVG charts drawn on the
server (``charts.py``); no script at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape
from urllib.parse import quote

from state.tables import DeadLetter
from worker.ops.charts import Line, line_chart
from worker.ops.health import age
from worker.ops.overview import ConnectionOverview, Counts
from worker.ops.series import Bucket
from worker.ops.story import Story

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:10px 20px;display:flex;gap:20px;align-items:center}
header a{color:#fff}main{padding:16px 20px;max-width:1200px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px 16px;margin:0 0 16px}
table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#555;font-weight:600}.num{text-align:right}.bad{color:#b00020;font-weight:600}
.ok{color:#2a7a2a}.problems{background:#fff3f3;border-color:#e6a0a0}.note{color:#555}
.charts{display:flex;gap:16px;flex-wrap:wrap}.chart-title{font-size:12px;font-weight:600}
.axis,.legend{font-size:10px;fill:#555}.legend{font-weight:600}
pre{background:#f3f3f3;padding:8px;overflow:auto;max-width:100%}
form.inline{display:inline}button{cursor:pointer}
"""


def layout(title: str, body: str, *, message: str | None = None) -> str:
    flash = f'<section class="note" id="message">{escape(message)}</section>' if message else ""
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} · planhat-sync</title><style>{STYLE}</style></head><body>"
        '<header><strong>planhat-sync</strong><a href="/ui">status</a>'
        '<form action="/ui/search" method="get" class="inline">'
        '<input name="q" placeholder="event id or record key" size="32" aria-label="search">'
        ' <button type="submit">Search</button></form></header>'
        f"<main>{flash}{body}</main></body></html>"
    )


def login_page(failed: bool) -> str:
    wrong = '<p class="bad">That is not the admin token.</p>' if failed else ""
    return layout(
        "log in",
        "<section><h2>Log in</h2>"
        f"{wrong}<p>The admin token is PLANHAT_SYNC_ADMIN_TOKEN (dev keeps one in "
        ".planhat-sync/admin-token).</p>"
        '<form method="post" action="/ui/login"><input type="password" name="token" '
        'aria-label="admin token" size="40"> <button type="submit">Log in</button></form>'
        "</section>",
    )


def status_page(
    overviews: Sequence[ConnectionOverview],
    charts: dict[str, list[Bucket]],
    letters: Sequence[DeadLetter],
    problems: Sequence[str],
    *,
    now: datetime,
    message: str | None,
) -> str:
    parts = []
    if problems:
        items = "".join(f"<li>{escape(problem)}</li>" for problem in problems)
        parts.append(f'<section class="problems"><h2>Needs a look</h2><ul>{items}</ul></section>')
    if not overviews:
        parts.append("<section>No connection has received anything yet.</section>")
    for view in overviews:
        parts.append(_connection(view, charts.get(view.name, []), now))
    parts.append(_letters(letters))
    return layout("status", "".join(parts), message=message)


def _connection(view: ConnectionOverview, buckets: list[Bucket], now: datetime) -> str:
    name = escape(view.name)
    oldest = age(view.oldest_pending) if view.oldest_pending is not None else "none"
    last_flush = _when(view.last_flush, now)
    token = (
        f'<span class="bad">{escape(view.token_problem)}</span>'
        if view.token_problem
        else '<span class="ok">set</span>'
    )
    rows = [
        ("Planhat token", token),
        (
            "Backlog",
            f"{view.backlog} ({view.pending_events} events, {view.pending_changes} changes "
            f"for Planhat, {view.pending_write_backs} write-backs); oldest waiting: {oldest}",
        ),
        ("Last successful flush", last_flush),
        ("Dead letters", _bad_if(view.dead_letters)),
        ("Rate budget", _budget(view)),
    ]
    for cursor in view.cursors:
        rows.append(
            (
                f"Poll cursor {escape(cursor.feed)}",
                f"moved {age(cursor.age)} ago; at {escape(cursor.position[:60])}",
            )
        )
    facts = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    return (
        f'<section class="connection" data-connection="{name}"><h2>Connection {name}</h2>'
        '<table class="counts"><tr><th></th><th class="num">received</th>'
        '<th class="num">applied</th><th class="num">ignored</th><th class="num">dead</th></tr>'
        f"{_counts_row('last hour', view.last_hour)}{_counts_row('last day', view.last_day)}"
        f"</table><table>{facts}</table>"
        f'<div class="charts">{_charts(buckets)}</div></section>'
    )


def _counts_row(label: str, counts: Counts) -> str:
    cells = "".join(
        f'<td class="num" data-count="{kind}">{value}</td>'
        for kind, value in (
            ("received", counts.received),
            ("applied", counts.applied),
            ("ignored", counts.ignored),
            ("dead", counts.dead),
        )
    )
    return f'<tr data-window="{label}"><th>{label}</th>{cells}</tr>'


def _budget(view: ConnectionOverview) -> str:
    budget = view.budget
    if budget is None:
        return '<span class="note">not known (no token, or the limiter cannot be read)</span>'
    paused = (
        f'; <span class="bad">paused {budget.paused_for:.1f} s after a 429</span>'
        if budget.paused_for > 0
        else ""
    )
    return (
        f"{budget.in_use} of a burst of {budget.burst} in use; 429s: "
        f"{budget.rate_limited_hour} last hour, {budget.rate_limited_day} last day{paused}"
    )


def _charts(buckets: list[Bucket]) -> str:
    if not buckets:
        return ""
    starts = [bucket.start for bucket in buckets]
    throughput = line_chart(
        "Throughput (events per slice, last hour)",
        starts,
        [
            Line(label="received", color="#1f77b4", values=[b.received for b in buckets]),
            Line(label="processed", color="#2ca02c", values=[b.processed for b in buckets]),
        ],
    )
    lag = line_chart(
        "Lag, received → processed (last hour)",
        starts,
        [
            Line(label="average", color="#ff7f0e", values=[b.lag_avg for b in buckets]),
            Line(label="max", color="#d62728", values=[b.lag_max for b in buckets]),
        ],
        unit=" s",
    )
    return throughput + lag


def _letters(letters: Sequence[DeadLetter]) -> str:
    if not letters:
        return '<section id="dead-letters"><h2>Dead letters</h2><p>None.</p></section>'
    rows = "".join(
        f'<tr data-letter="{letter.id}"><td><a href="/ui/letters/{letter.id}">{letter.id}</a></td>'
        f"<td>{escape(letter.connection)}</td><td>{escape(letter.model or '(event)')}</td>"
        f"<td>{escape(letter.key)}</td><td>{escape(letter.reason[:160])}</td></tr>"
        for letter in letters
    )
    return (
        '<section id="dead-letters"><h2>Dead letters</h2><table><tr><th>id</th>'
        f"<th>connection</th><th>model</th><th>record</th><th>reason</th></tr>{rows}</table>"
        "</section>"
    )


def letter_page(letter: DeadLetter, *, message: str | None = None) -> str:
    event = (
        f'<a href="/ui/search?q={quote(letter.event_id)}">{escape(letter.event_id)}</a>'
        if letter.event_id
        else "none"
    )
    rows = [
        ("Connection", escape(letter.connection)),
        ("Model", escape(letter.model or "(the event itself)")),
        ("Record", escape(letter.key)),
        ("Written back to", escape(letter.target or "Planhat")),
        ("Attempts", str(letter.attempts)),
        ("Event", event),
        ("Buried at", escape(letter.created_at.isoformat(timespec="seconds"))),
        ("Reason", f'<span class="bad" id="reason">{escape(letter.reason)}</span>'),
    ]
    facts = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows)
    record = escape(json.dumps(letter.fields, indent=2, ensure_ascii=False, default=str))
    return layout(
        f"dead letter {letter.id}",
        f"<section><h2>Dead letter {letter.id}</h2><table>{facts}</table>"
        f"<h3>The record</h3><pre id=record>{record}</pre>"
        f'<form method="post" action="/ui/letters/{letter.id}/retry" class="inline">'
        '<button type="submit">Retry</button></form> '
        f'<form method="post" action="/ui/letters/{letter.id}/drop" class="inline">'
        '<button type="submit">Drop</button></form>'
        '<p class="note">Retry sends it through the pipeline again (fix the cause first); '
        "Drop forgets it for good.</p></section>",
        message=message,
    )


def search_page(
    query: str, stories: Sequence[Story], now: datetime, *, message: str | None = None
) -> str:
    if not stories:
        body = f"<section>Nothing found for <code>{escape(query)}</code>.</section>"
        return layout("search", body, message=message)
    parts = []
    for story in stories:
        steps = "".join(
            f'<tr class="{"ok" if step.ok else "bad"}" data-stage="{escape(step.stage)}">'
            f"<th>{escape(step.stage)}</th><td>{_when(step.when, now)}</td>"
            f"<td>{escape(step.text)}{_step_links(step.event_id, step.letter_id)}</td></tr>"
            for step in story.steps
        )
        parts.append(f'<section class="story"><h2>{escape(story.title)}</h2><table>{steps}</table>')
        parts.append("</section>")
    return layout(f"search {query}", "".join(parts), message=message)


def _step_links(event_id: str | None, letter_id: int | None) -> str:
    links = []
    if event_id:
        links.append(f'<a href="/ui/search?q={quote(event_id)}">event {escape(event_id)}</a>')
    if letter_id is not None:
        links.append(f'<a href="/ui/letters/{letter_id}">dead letter {letter_id}</a>')
    return f" ({', '.join(links)})" if links else ""


def _bad_if(count: int) -> str:
    return f'<span class="bad">{count}</span>' if count else "0"


def _when(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    seconds = (now - when).total_seconds()
    ago = f"{age(seconds)} ago" if seconds >= 0 else f"in {age(-seconds)}"
    return f'<time datetime="{when.isoformat()}">{ago}</time>'
