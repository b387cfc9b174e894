"""`report.html`: the backtest as a page to look at, and `trades.csv`, in the backtest's folder.

One self-contained file that opens offline on a Pi (no CDN, no script, no font download): the
headline numbers, the equity curve with its drawdown, the P&L of each session, the ladder's
timeline (the phase each session traded in; eligibility and advances, downgrades with their
reasons) and every trade. The charts are inline SVG drawn here — a few hundred lines of our own
instead of a plotting library: nothing to install on the Pi, a page of tens of kilobytes that
renders at once, and no JavaScript (docs/decisions.md, "The backtest report").

Times are New York time with the zone; the numbers are those of `report.json` (the same
document), the trades those of `journal/trades.jsonl` in the one canonical order of
`tradebot journal` and the ladder (`core.metrics.trade_order`).

Why one module: the page is one self-contained file whose SVG charts and layout are written
together (the same scales, colours and New York times); split, each half would pass the other its
geometry.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebot.core.market_time import market_datetime
from tradebot.core.metrics import chronological
from tradebot.core.trades import TRADE_FIELDS, ClosedTrade
from tradebot.storage.records import csv_text

REPORT_HTML = "report.html"
TRADES_CSV = "trades.csv"

WIDTH = 960  # the drawing's user units; the SVG scales to the page
GREEN, RED, BLUE, GREY = "#1a7f37", "#cf222e", "#0969da", "#8c959f"
PHASE_COLOURS = {
    "experience": "#8c959f",
    "proof": "#0969da",
    "trial": "#8250df",
    "scaling": "#1a7f37",
}


def write_report_files(out: Path, report: dict[str, Any], trades: Sequence[ClosedTrade]) -> None:
    """`report.html` and `trades.csv` in `out`, each replaced atomically."""
    from tradebot.storage import write_atomic

    page = render_html(report, trades)
    write_atomic(out / REPORT_HTML, page.encode("utf-8"))
    write_atomic(out / TRADES_CSV, trades_csv(trades).encode("utf-8"))


def trades_csv(trades: Sequence[ClosedTrade]) -> str:
    """The trades as `tradebot journal --csv` writes them (the record's columns, UTC times)."""
    return csv_text(TRADE_FIELDS, (t.model_dump(mode="json") for t in chronological(trades)))


# -- the page -----------------------------------------------------------------------------------
def render_html(report: dict[str, Any], trades: Sequence[ClosedTrade]) -> str:
    ordered = chronological(trades)  # the one order of journal, phase export and the ladder
    base = _dec(report["base_equity"]) or Decimal(0)
    rng = report["range"]
    title = f"Backtest {', '.join(report['symbols'])} · {rng['from']} … {rng['to']}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{_e(report["source"]["description"])} · '
        f"{rng['sessions']} sessions · {len(ordered)} trade(s) · journals in "
        f"<code>{_e(report['out'])}</code></p>",
        _headline(report, base),
        '<section id="equity"><h2>Equity and drawdown</h2>',
        _equity_svg(ordered, base),
        "</section>",
        '<section id="sessions"><h2>P&amp;L per session</h2>',
        _sessions_svg(ordered, _sessions(report)),
        "</section>",
        '<section id="ladder"><h2>The phase ladder</h2>',
        _ladder(report),
        "</section>",
        '<section id="trades"><h2>Trades</h2>',
        _trades_table(ordered),
        "</section>",
        _notes(report),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:24px auto;max-width:1000px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#57606a;margin:0 0 16px}code{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:8px}
.card{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;min-width:120px}
.card b{display:block;font-size:18px}.card span{color:#57606a;font-size:12px}
svg{width:100%;height:auto;display:block}
svg text{font:11px system-ui,sans-serif;fill:#57606a}
table{border-collapse:collapse;width:100%;font-size:12px}
th,td{padding:3px 6px;border-bottom:1px solid #eaeef2;text-align:left;white-space:nowrap}
th{background:#f6f8fa;position:sticky;top:0}td.n,th.n{text-align:right}
.win{color:#1a7f37}.loss{color:#cf222e}.muted{color:#57606a}
.steps td{white-space:normal}.warn{color:#9a6700}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
"""


def _headline(report: dict[str, Any], base: Decimal) -> str:
    s = report["summary"]
    final = _dec(report["run"].get("final_equity"))
    cards = [
        ("trades", f"{s['trades']} ({s['wins']} won)"),
        ("win rate", _pct(s.get("win_rate"))),
        ("total P&L", _money(_dec(s.get("total_pnl")))),
        ("max drawdown", f"{_money(_dec(s.get('max_drawdown_usd')))}"),
        ("profit factor", _ratio(s.get("profit_factor"))),
        ("expectancy", f"{_ratio(s.get('expectancy_r'))} R"),
        ("start equity", _money(base)),
        ("end equity", _money(final)),
    ]
    inner = "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
    return f'<div class="cards" id="summary">{inner}</div>'


# -- charts -------------------------------------------------------------------------------------
def _equity_svg(trades: Sequence[ClosedTrade], base: Decimal) -> str:
    """The closed-trade equity after each trade, and under it the drawdown from the running
    peak in percent."""
    if not trades:
        return '<p class="muted">No trades: no curve.</p>'
    equity = [float(base)]
    for t in trades:
        equity.append(equity[-1] + float(t.pnl))
    peak, drawdown = equity[0], []
    for value in equity:
        peak = max(peak, value)
        drawdown.append(0.0 if peak <= 0 else (value - peak) / peak * 100)
    left, right, top, h_eq, gap, h_dd, bottom = 70, 16, 12, 230, 28, 90, 26
    height = top + h_eq + gap + h_dd + bottom
    plot_w = WIDTH - left - right
    n = len(equity) - 1
    lo, hi = min(equity), max(equity)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    lo, hi = lo - pad, hi + pad

    def x(i: int) -> float:
        return left + plot_w * (i / n if n else 0.5)

    def y(v: float) -> float:
        return top + h_eq * (1 - (v - lo) / (hi - lo))

    dd_lo = min(min(drawdown), -0.01) * 1.1
    dd_top = top + h_eq + gap

    def y_dd(v: float) -> float:
        return dd_top + h_dd * (v / dd_lo)

    out = [
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="equity curve and '
        f'drawdown" id="equity-chart">'
    ]
    for k in range(5):  # equity grid and labels
        v = lo + (hi - lo) * k / 4
        out.append(_hline(left, WIDTH - right, y(v)))
        out.append(_text(left - 6, y(v) + 4, f"{v:,.0f}", "end"))
    out.append(_hline(left, WIDTH - right, y(equity[0]), GREY, dash=True))
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(equity))
    out.append(
        f'<polyline class="equity" points="{points}" fill="none" stroke="{BLUE}" '
        'stroke-width="2" stroke-linejoin="round"/>'
    )
    out.append(_text(left, top - 2, "equity ($, closed trades)", "start"))
    # drawdown: an area from 0 down to the drawdown
    area = [f"{x(0):.1f},{y_dd(0):.1f}"]
    area += [f"{x(i):.1f},{y_dd(v):.1f}" for i, v in enumerate(drawdown)]
    area.append(f"{x(n):.1f},{y_dd(0):.1f}")
    out.append(_hline(left, WIDTH - right, y_dd(0)))
    out.append(_hline(left, WIDTH - right, y_dd(dd_lo / 1.1)))
    out.append(
        f'<polygon class="drawdown" points="{" ".join(area)}" fill="{RED}" '
        f'fill-opacity="0.35" stroke="{RED}" stroke-width="1"/>'
    )
    out.append(_text(left - 6, y_dd(0) + 4, "0 %", "end"))
    out.append(_text(left - 6, y_dd(dd_lo / 1.1) + 4, f"{dd_lo / 1.1:.2f} %", "end"))
    out.append(_text(left, dd_top - 4, "drawdown from the running peak", "start"))
    # x axis: trade numbers with their session dates
    ticks = sorted({round(n * k / 5) for k in range(5)} | {n})
    ticks = [i for j, i in enumerate(ticks) if i == n or x(ticks[j + 1]) - x(i) >= 130]
    for i in ticks:
        label = "start" if i == 0 else f"#{i} · {trades[i - 1].session}"
        anchor = "start" if i == 0 else ("end" if i == n else "middle")
        out.append(_text(x(i), height - 8, label, anchor))
    out.append("</svg>")
    return "".join(out)


def _sessions(report: dict[str, Any]) -> list[date]:
    """The sessions of the range (dates), from the ladder steps' and the range's ends."""
    from tradebot.core.sessions import sessions_between

    rng = report["range"]
    return sessions_between(_day(rng["from"]), _day(rng["to"]))


def _sessions_svg(trades: Sequence[ClosedTrade], sessions: list[date]) -> str:
    if not sessions:
        return ""
    pnl: dict[date, float] = dict.fromkeys(sessions, 0.0)
    for t in trades:
        pnl[t.session] = pnl.get(t.session, 0.0) + float(t.pnl)
    days = sorted(pnl)
    left, right, top, plot_h, bottom = 70, 16, 12, 170, 26
    height = top + plot_h + bottom
    plot_w = WIDTH - left - right
    hi = max(max(pnl.values()), 0.0)
    lo = min(min(pnl.values()), 0.0)
    if hi - lo < 1e-9:
        hi, lo = 1.0, -1.0

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    step = plot_w / len(days)
    bar = max(1.0, step * 0.7)
    out = [
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-label="P&amp;L per session" '
        'id="sessions-chart">'
    ]
    out.append(_hline(left, WIDTH - right, y(0)))
    out.append(_text(left - 6, y(hi) + 4, f"{hi:,.0f}", "end"))
    out.append(_text(left - 6, y(0) + 4, "0", "end"))
    if lo < 0:
        out.append(_text(left - 6, y(lo) + 4, f"{lo:,.0f}", "end"))
    for i, day in enumerate(days):
        value = pnl[day]
        x0 = left + step * i + (step - bar) / 2
        y0, y1 = sorted((y(value), y(0)))
        colour = GREEN if value > 0 else RED
        out.append(
            f'<rect class="session" x="{x0:.1f}" y="{y0:.1f}" width="{bar:.1f}" '
            f'height="{max(y1 - y0, 0.5):.1f}" fill="{colour}"><title>{day}: '
            f"{_e(_money(Decimal(str(round(value, 2)))))}</title></rect>"
        )
    labels = min(len(days), 8)
    for k in range(labels):
        i = round((len(days) - 1) * k / max(labels - 1, 1))
        out.append(_text(left + step * (i + 0.5), height - 8, str(days[i]), "middle"))
    out.append("</svg>")
    return "".join(out)


def _ladder(report: dict[str, Any]) -> str:
    """The phase each session traded in, as a band, then every step with its reasons."""
    ladder = report["ladder"]
    sessions = _sessions(report)
    steps = ladder["steps"]
    advances = bool(ladder.get("operator_advances", True))
    phase = str(ladder["initial"])
    by_day: dict[date, str] = {}
    changes = sorted(
        (
            (_day(s["session"]), str(s["to_phase"]))
            for s in steps
            if s["kind"] != "eligible" or advances
        ),
        key=lambda c: c[0],
    )
    k = 0  # a change during a session applies from the next one
    for day in sessions:
        while k < len(changes) and changes[k][0] < day:
            phase = changes[k][1]
            k += 1
        by_day[day] = phase
    left, right, band = 70, 16, 22
    plot_w = WIDTH - left - right
    out = [f'<svg viewBox="0 0 {WIDTH} 58" role="img" aria-label="ladder timeline" id="ladder">']
    if sessions:
        step = plot_w / len(sessions)
        for i, day in enumerate(sessions):
            colour = PHASE_COLOURS.get(by_day[day], GREY)
            out.append(
                f'<rect x="{left + step * i:.1f}" y="8" width="{step + 0.3:.1f}" '
                f'height="{band}" fill="{colour}"><title>{day}: {by_day[day]}</title></rect>'
            )
        for s in steps:
            if _day(s["session"]) not in sessions:
                continue
            at = sessions.index(_day(s["session"]))
            mark = GREEN if s["kind"] == "eligible" else RED
            cx = left + step * (at + 0.5)
            out.append(
                f'<path d="M{cx:.1f},{8 + band + 2} l-5,9 h10 z" fill="{mark}"><title>'
                f"{_e(s['kind'])} {_e(s['from_phase'])} → {_e(s['to_phase'])}</title></path>"
            )
        out.append(_text(left, 54, str(sessions[0]), "start"))
        out.append(_text(WIDTH - right, 54, str(sessions[-1]), "end"))
    out.append(_text(left - 6, 8 + band / 2 + 4, "phase", "end"))
    out.append("</svg>")
    legend = "".join(
        f'<span><i style="background:{c}"></i>{p}</span>' for p, c in PHASE_COLOURS.items()
    )
    out.append(f'<p class="legend">{legend}</p>')
    if not steps:
        out.append(
            f'<p class="muted">No phase became eligible and nothing was downgraded in '
            f"{len(sessions)} sessions.</p>"
        )
    else:
        rows = []
        for s in steps:
            kind = {"eligible": "eligible → advance", "auto_downgrade": "downgrade"}.get(
                s["kind"], str(s["kind"])
            )
            why = "; ".join(s.get("reasons") or []) or s.get("note") or ""
            css = "win" if s["kind"] == "eligible" else "loss"
            rows.append(
                f'<tr><td>{_e(s["session"])}</td><td class="{css}">{_e(kind)}</td>'
                f"<td>{_e(s['from_phase'])} → {_e(s['to_phase'])}</td><td>{_e(why)}</td></tr>"
            )
        out.append(
            '<table class="steps"><thead><tr><th>session</th><th>step</th><th>phase</th>'
            f"<th>why</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    end = ladder.get("end")
    if end:
        cap = end["limits"].get("position_cap_usd")
        out.append(
            f"<p>At the end: <b>{_e(end['phase'])}</b> (live "
            f"{'allowed' if end['limits'].get('live_allowed') else 'refused'}, position cap "
            f"{_e(_money(_dec(cap)) if cap is not None else 'n/a')})"
            + (
                f"; {'eligible' if end['eligible'] else 'not yet eligible'} for "
                f"{_e(end['next_phase'])}"
                if end.get("next_phase")
                else ""
            )
            + ".</p>"
        )
    return "".join(out)


def _trades_table(trades: Sequence[ClosedTrade]) -> str:
    if not trades:
        return '<p class="muted">No trades: no signal passed every rule in these sessions.</p>'
    head = (
        "<tr><th class=n>#</th><th>exit (New York)</th><th>trade</th><th>contract</th>"
        "<th>strategy</th><th class=n>qty</th><th class=n>entry</th><th class=n>exit</th>"
        "<th class=n>P&amp;L</th><th class=n>R</th><th>reason</th><th>phase</th></tr>"
    )
    rows = []
    for i, t in enumerate(trades, 1):
        css = "win" if t.pnl > 0 else "loss"
        rows.append(
            f"<tr><td class=n>{i}</td><td>{_e(market_datetime(t.exit_time))}</td>"
            f"<td>{_e(t.trade_id)}</td><td>{_e(t.contract)}</td><td>{_e(t.strategy)}</td>"
            f"<td class=n>{t.qty}</td><td class=n>{t.entry_price.normalize():f}</td>"
            f"<td class=n>{t.exit_price.normalize():f}</td>"
            f'<td class="n {css}">{_e(_money(t.pnl))}</td>'
            f"<td class=n>{t.r_multiple.quantize(Decimal('0.01'))}</td>"
            f"<td>{_e(t.exit_reason)}</td><td>{_e(t.phase)}</td></tr>"
        )
    return f'<table id="trades-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _notes(report: dict[str, Any]) -> str:
    items = [f"<li>{_e(report['pricing'])}</li>"]
    items += [f'<li class="warn">{_e(w)}</li>' for w in report.get("warnings", [])]
    return f'<section id="notes"><h2>Notes</h2><ul>{"".join(items)}</ul></section>'


# -- small helpers ------------------------------------------------------------------------------
def _hline(x0: float, x1: float, y: float, colour: str = "#eaeef2", *, dash: bool = False) -> str:
    extra = ' stroke-dasharray="4 3"' if dash else ""
    return f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="{colour}"{extra}/>'


def _text(x: float, y: float, text: str, anchor: str) -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">{_e(text)}</text>'


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _day(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    q = value.quantize(Decimal("0.01"))
    return f"-${-q:,}" if q < 0 else f"${q:,}"


def _pct(value: Any) -> str:
    d = _dec(value)
    return "—" if d is None else f"{(d * 100).quantize(Decimal('0.1'))} %"


def _ratio(value: Any) -> str:
    if value in (None, "Infinity"):
        return "∞" if value == "Infinity" else "—"
    d = _dec(value)
    assert d is not None
    return "∞" if not d.is_finite() else str(d.quantize(Decimal("0.01")))
