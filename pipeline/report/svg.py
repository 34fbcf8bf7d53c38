"""Inline SVG pictures (DAG, line and bar charts, heat map, threshold scale) and PNG data URIs; no dependencies."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from html import escape
from typing import Mapping, Optional, Sequence

# Colours: ran, cached, failed, not run; series colours for charts.
STATE_COLOURS = {"ran": "#2e7d32", "cached": "#1565c0", "failed": "#c62828", "running": "#ef6c00", "not run": "#9e9e9e"}
SERIES_COLOURS = ("#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a", "#c62828", "#00838f")
FONT = 'font-family="system-ui, sans-serif"'


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, *, size: int = 12, anchor: str = "start", fill: str = "#222", weight: str = "normal") -> str:
    return (
        f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
        f'font-weight="{weight}">{escape(text)}</text>'
    )


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (
        f'<svg width="{_num(width)}" height="{_num(height)}" '
        f'viewBox="0 0 {_num(width)} {_num(height)}" style="max-width:100%;height:auto" role="img" aria-label="{escape(label)}" {FONT}>'
        + "".join(body)
        + "</svg>"
    )


# --- DAG ------------------------------------------------------------------------------------


def layers(nodes: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Column of each node: the longest path from a node without inputs (cycles are cut)."""
    column: dict[str, int] = {}

    def depth(node: str, visiting: frozenset[str]) -> int:
        if node in column:
            return column[node]
        parents = [p for p in upstream.get(node, ()) if p in nodes and p != node and p not in visiting]
        value = 1 + max((depth(p, visiting | {node}) for p in parents), default=-1)
        column[node] = value
        return value

    for node in nodes:
        depth(node, frozenset())
    return column


def dag(nodes: Sequence[tuple[str, str, str]], upstream: Mapping[str, Sequence[str]]) -> str:
    """Boxes in columns by depth, arrows from producers to consumers.

    `nodes`: (node id, state, detail line such as "ran 4.2 s"), in run order; the state picks the colour.
    """
    ids = [node_id for node_id, _, _ in nodes]
    column = layers(ids, upstream)
    box_w, box_h, gap_x, gap_y, pad = 168, 50, 30, 16, 10
    rows: dict[int, int] = {}
    position: dict[str, tuple[float, float]] = {}
    for node_id in ids:
        col = column[node_id]
        row = rows.get(col, 0)
        rows[col] = row + 1
        position[node_id] = (pad + col * (box_w + gap_x), pad + row * (box_h + gap_y))
    width = pad * 2 + (max(column.values(), default=0) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max(rows.values(), default=1) * (box_h + gap_y) - gap_y
    body = [
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>'
    ]
    for node_id in ids:
        x2, y2 = position[node_id]
        for parent in upstream.get(node_id, ()):
            if parent not in position:
                continue
            x1, y1 = position[parent]
            sx, sy, ex, ey = x1 + box_w, y1 + box_h / 2, x2, y2 + box_h / 2
            if ex <= sx:  # same column: go around the right side
                sx, ex = x1 + box_w / 2, x2 + box_w / 2
                sy, ey = y1 + box_h, y2
                path = f"M{_num(sx)},{_num(sy)} L{_num(ex)},{_num(ey)}"
            else:
                mid = (sx + ex) / 2
                path = f"M{_num(sx)},{_num(sy)} C{_num(mid)},{_num(sy)} {_num(mid)},{_num(ey)} {_num(ex)},{_num(ey)}"
            body.append(f'<path d="{path}" fill="none" stroke="#777" stroke-width="1.4" marker-end="url(#arrow)"/>')
    for node_id, state, detail in nodes:
        x, y = position[node_id]
        colour = STATE_COLOURS.get(state, "#9e9e9e")
        body.append(
            f'<g class="node" data-node="{escape(node_id)}" data-state="{escape(state)}">'
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{box_w}" height="{box_h}" rx="7" fill="#fff" '
            f'stroke="{colour}" stroke-width="2.2"/>'
            f'<rect x="{_num(x)}" y="{_num(y)}" width="8" height="{box_h}" rx="3" fill="{colour}"/>'
            + _text(x + 16, y + 21, node_id if len(node_id) <= 21 else node_id[:20] + "…", size=13, weight="600")
            + _text(x + 16, y + 39, detail, size=12, fill=colour)
            + "</g>"
        )
    return _svg(width, height, body, "pipeline DAG")


# --- charts ---------------------------------------------------------------------------------


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt_tick(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str,
    x_label: str = "epoch",
    marker_x: Optional[float] = None,
    marker_label: str = "",
    width: int = 540,
    height: int = 280,
) -> str:
    """One line per series with dots; an optional dashed vertical marker (the best epoch)."""
    left, right, top, bottom = 56, 16, 30, 44
    points = [p for values in series.values() for p in values]
    if not points:
        return _svg(width, 40, [_text(8, 24, f"{title}: no data")], title)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
    y_low, y_high = min(ys), max(ys)
    span = (y_high - y_low) or abs(y_high) or 1.0
    y_low, y_high = y_low - span * 0.08, y_high + span * 0.08
    plot_w, plot_h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    body = [_text(8, 18, title, size=14, weight="600")]
    for tick in _ticks(y_low, y_high):
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(sy(tick))}" y2="{_num(sy(tick))}" stroke="#eee"/>')
        body.append(_text(left - 6, sy(tick) + 4, _fmt_tick(tick), size=11, anchor="end", fill="#666"))
    x_ticks = [t for t in _ticks(x_low, x_high, 8) if float(t).is_integer()] or [x_low]
    for tick in x_ticks:
        body.append(_text(sx(tick), height - bottom + 16, _fmt_tick(tick), size=11, anchor="middle", fill="#666"))
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#bbb"/>')
    body.append(_text(left + plot_w / 2, height - 8, x_label, size=12, anchor="middle", fill="#444"))
    if marker_x is not None:
        mx = sx(marker_x)
        body.append(
            f'<line class="best" x1="{_num(mx)}" x2="{_num(mx)}" y1="{top}" y2="{top + plot_h}" '
            'stroke="#2e7d32" stroke-width="1.5" stroke-dasharray="5,4"/>'
        )
        anchor = "end" if mx > left + plot_w * 0.7 else "start"
        label = _text(mx + (-4 if anchor == "end" else 4), top + 13, marker_label, size=11, anchor=anchor, fill="#2e7d32")
        body.append(label.replace("<text ", '<text paint-order="stroke" stroke="#fff" stroke-width="3" ', 1))
    for index, (name, values) in enumerate(series.items()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        ordered = sorted(values)
        path = " ".join(f"{'M' if i == 0 else 'L'}{_num(sx(x))},{_num(sy(y))}" for i, (x, y) in enumerate(ordered))
        body.append(f'<path class="series" d="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body.extend(f'<circle cx="{_num(sx(x))}" cy="{_num(sy(y))}" r="2.6" fill="{colour}"/>' for x, y in ordered)
        # Legend in the top margin, right-aligned: it never covers the lines.
        lx = width - right - (len(series) - index) * 140
        body.append(f'<rect x="{_num(lx)}" y="12" width="12" height="4" fill="{colour}"/>')
        body.append(_text(lx + 16, 18, name if len(name) <= 20 else name[:19] + "…", size=11, fill="#333"))
    return _svg(width, height, body, title)


def bar_chart(
    categories: Sequence[str],
    groups: Mapping[str, Sequence[float]],
    *,
    title: str,
    value_format: str = "{:.0f}",
    reference: Optional[tuple[float, str]] = None,
    low: float = 0.0,
    high: Optional[float] = None,
    width: int = 540,
    height: int = 250,
) -> str:
    """Vertical bars per category, one bar per group (e.g. train and eval), values printed on the bars.

    `reference`: a horizontal dashed line (value, label), e.g. the overall accuracy.
    """
    left, right, top, bottom = 56, 16, 40, 48
    values = [v for vs in groups.values() for v in vs]
    if not categories or not values:
        return _svg(width, 40, [_text(8, 24, f"{title}: no data")], title)
    top_value = high if high is not None else max(values + ([reference[0]] if reference else [])) * 1.08 or 1.0
    plot_w, plot_h = width - left - right, height - top - bottom
    slot = plot_w / len(categories)
    bar_w = max(2.0, min(28.0, slot * 0.8 / max(1, len(groups))))

    def sy(y: float) -> float:
        return top + (1 - (y - low) / ((top_value - low) or 1.0)) * plot_h

    body = [_text(left, 18, title, size=14, weight="600")]
    for tick in _ticks(low, top_value):
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(sy(tick))}" y2="{_num(sy(tick))}" stroke="#eee"/>')
        body.append(_text(left - 6, sy(tick) + 4, _fmt_tick(tick), size=11, anchor="end", fill="#666"))
    show_values = slot >= 24 * len(groups)
    for c, category in enumerate(categories):
        centre = left + slot * (c + 0.5)
        start = centre - bar_w * len(groups) / 2
        for g, (group, vs) in enumerate(groups.items()):
            value = vs[c]
            colour = SERIES_COLOURS[g % len(SERIES_COLOURS)]
            x, y = start + g * bar_w, sy(max(value, low))
            body.append(
                f'<rect class="bar" x="{_num(x)}" y="{_num(y)}" width="{_num(bar_w - 1)}" height="{_num(top + plot_h - y)}" '
                f'fill="{colour}"><title>{escape(f"{category} {group}: {value_format.format(value)}")}</title></rect>'
            )
            if show_values:
                body.append(_text(x + bar_w / 2, y - 3, value_format.format(value), size=9, anchor="middle", fill="#444"))
        label = category if len(category) <= 10 else category[:9] + "…"
        body.append(_text(centre, top + plot_h + 15, label, size=11, anchor="middle", fill="#333"))
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}" stroke="#999"/>')
    if reference is not None:
        ry = sy(reference[0])
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{_num(ry)}" y2="{_num(ry)}" stroke="#c62828" stroke-dasharray="5,4"/>')
        body.append(_text(width - right, ry - 4, reference[1], size=11, anchor="end", fill="#c62828"))
    if len(groups) > 1:
        for g, group in enumerate(groups):
            lx = left + g * 110
            body.append(f'<rect x="{lx}" y="{height - 14}" width="12" height="10" fill="{SERIES_COLOURS[g % len(SERIES_COLOURS)]}"/>')
            body.append(_text(lx + 16, height - 5, group, size=11))
    return _svg(width, height, body, title)


def hbar_chart(items: Sequence[tuple[str, float]], *, title: str, unit: str = "s", width: int = 540) -> str:
    """Horizontal bars with their values, e.g. the phases of a validation and how long each took."""
    if not items:
        return _svg(width, 40, [_text(8, 24, f"{title}: no data")], title)
    left, right, top, row = 130, 70, 28, 24
    high = max(value for _, value in items) or 1.0
    body = [_text(8, 18, title, size=14, weight="600")]
    for index, (name, value) in enumerate(items):
        y = top + index * row
        bar = max(1.0, value / high * (width - left - right))
        body.append(_text(left - 8, y + 15, name, size=12, anchor="end"))
        body.append(f'<rect class="bar" x="{left}" y="{y + 3}" width="{_num(bar)}" height="{row - 8}" fill="{SERIES_COLOURS[0]}">'
                    f"<title>{escape(f'{name}: {value:g} {unit}')}</title></rect>")
        body.append(_text(left + bar + 6, y + 15, f"{value:.2f} {unit}", size=12, fill="#444"))
    return _svg(width, top + len(items) * row + 8, body, title)


def heatmap(labels: Sequence[str], matrix: Sequence[Sequence[float]], *, title: str, cell: int = 34) -> str:
    """A confusion matrix: rows actual, columns predicted; shade by row share, blue right, red wrong."""
    n = len(labels)
    left, top = 78, 52
    width, height = left + n * cell + 16, top + n * cell + 30
    body = [_text(8, 18, title, size=14, weight="600"), _text(left + n * cell / 2, 38, "predicted", size=12, anchor="middle", fill="#444")]
    body.append(
        f'<text x="14" y="{_num(top + n * cell / 2)}" font-size="12" fill="#444" text-anchor="middle" '
        f'transform="rotate(-90 14 {_num(top + n * cell / 2)})">actual</text>'
    )
    for i, label in enumerate(labels):
        short = label if len(label) <= 8 else label[:7] + "…"
        body.append(_text(left - 6, top + i * cell + cell / 2 + 4, short, size=11, anchor="end"))
        body.append(_text(left + i * cell + cell / 2, top + n * cell + 14, short, size=11, anchor="middle"))
    for i, row in enumerate(matrix):
        total = sum(row) or 1.0
        for j, value in enumerate(row):
            share = value / total
            hue = "21,101,192" if i == j else "198,40,40"
            opacity = 0.0 if value == 0 else 0.12 + 0.88 * share
            x, y = left + j * cell, top + i * cell
            body.append(
                f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgba({hue},{opacity:.2f})" '
                f'stroke="#ddd"><title>{escape(f"actual {labels[i]}, predicted {labels[j]}: {value:g}")}</title></rect>'
            )
            if value:
                colour = "#fff" if opacity > 0.55 else "#222"
                body.append(_text(x + cell / 2, y + cell / 2 + 4, f"{value:g}", size=11, anchor="middle", fill=colour))
    return _svg(width, height, body, title)


def threshold_scale(
    marks: Sequence[tuple[str, float, str]],
    *,
    title: str,
    accept_from: Optional[float] = None,
    width: int = 540,
) -> str:
    """A horizontal scale with labelled marks (name, value, kind): kind "value" is a dot, "bound" a line.

    `accept_from` shades the accepted range (from the stricter bound to the right end).
    """
    if not marks:
        return _svg(width, 40, [_text(8, 24, f"{title}: no data")], title)
    values = [value for _, value, _ in marks]
    low = min(values)
    high = max(values)
    span = max(high - low, 0.02)
    low, high = max(0.0, low - span * 0.5), min(1.0, high + span * 0.5) if high <= 1.0 else high + span * 0.5
    if high - low < 1e-9:
        high = low + 1
    left, right, axis_y = 20, 20, 70
    plot_w = width - left - right

    def sx(x: float) -> float:
        return left + (x - low) / (high - low) * plot_w

    body = [_text(left, 18, title, size=14, weight="600")]
    if accept_from is not None:
        start = sx(max(low, accept_from))
        body.append(f'<rect class="accepted" x="{_num(start)}" y="{axis_y - 14}" width="{_num(left + plot_w - start)}" height="28" fill="#e8f5e9"/>')
    body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis_y}" y2="{axis_y}" stroke="#999"/>')
    for tick in _ticks(low, high, 6):
        body.append(f'<line x1="{_num(sx(tick))}" x2="{_num(sx(tick))}" y1="{axis_y}" y2="{axis_y + 5}" stroke="#999"/>')
        body.append(_text(sx(tick), axis_y + 18, f"{tick:.3g}", size=11, anchor="middle", fill="#666"))
    above = 0
    for index, (name, value, kind) in enumerate(marks):
        x = sx(value)
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)] if kind == "value" else "#c62828"
        if kind == "value":
            # The first value solid, the others rings around it: equal values stay visible.
            body.append(f'<circle class="mark" cx="{_num(x)}" cy="{axis_y}" r="6" fill="{colour}"/>' if above == 0 else
                        f'<circle class="mark" cx="{_num(x)}" cy="{axis_y}" r="{6 + 3 * above}" fill="none" '
                        f'stroke="{colour}" stroke-width="2"/>')
            y = axis_y - 20 - 14 * above
            above += 1
        else:
            body.append(f'<line class="bound" x1="{_num(x)}" x2="{_num(x)}" y1="{axis_y - 16}" y2="{axis_y + 16}" stroke="{colour}" stroke-width="2" stroke-dasharray="4,3"/>')
            y = axis_y + 34 + 14 * (index % 2)
        anchor = "end" if x > left + plot_w * 0.75 else "start"
        body.append(_text(x + (-6 if anchor == "end" else 6), y, f"{name} {value:.4f}", size=11, anchor=anchor, fill=colour))
    return _svg(width, axis_y + 64, body, title)


# --- images ---------------------------------------------------------------------------------


def png_bytes(pixels: bytes, height: int, width: int, channels: int) -> bytes:
    """A PNG (8-bit grey, grey+alpha, RGB or RGBA) from row-major uint8 pixels."""
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stride = width * channels
    if len(pixels) != height * stride:
        raise ValueError(f"expected {height}x{width}x{channels} = {height * stride} bytes, got {len(pixels)}")
    raw = b"".join(b"\x00" + pixels[row * stride:(row + 1) * stride] for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def png_data_uri(pixels: bytes, height: int, width: int, channels: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(pixels, height, width, channels)).decode("ascii")
