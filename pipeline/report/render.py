"""The run report and the index as self-contained HTML (inline CSS and SVG, no scripts, no URLs) from plain data."""

from __future__ import annotations

import time
from collections import Counter
from html import escape
from typing import Optional, Sequence

from pipeline.report import svg
from pipeline.report.model import (
    CACHED,
    FAILED,
    NOT_RUN,
    RAN,
    DataSummary,
    Evaluation,
    InfraValidation,
    LiveCheck,
    Push,
    RunEntry,
    RunReport,
    TrainingHistory,
)

NO_HISTORY = "no training history recorded"

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222;line-height:1.45;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:30px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#555;font-size:14px}.verdict{font-size:17px;padding:10px 14px;border-radius:6px;margin:14px 0}
.good{background:#e8f5e9;border-left:6px solid #2e7d32}.bad{background:#ffebee;border-left:6px solid #c62828}
.neutral{background:#f5f5f5;border-left:6px solid #9e9e9e}
ul.story{margin:6px 0 0 0;padding-left:20px}.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.pass{color:#2e7d32;font-weight:600}
.fail{color:#c62828;font-weight:600}.note{color:#666;font-size:13px}.legend span{display:inline-block;margin-right:14px;font-size:13px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:4px;vertical-align:-1px}
figure{margin:0}figcaption{font-size:12px;color:#555;text-align:center}img.sample{image-rendering:pixelated;border:1px solid #ccc}
code{background:#f5f5f5;padding:1px 4px;border-radius:3px;font-size:13px}table.text td,table.text th{text-align:left}
"""


def _fmt_time(epoch_seconds: Optional[float]) -> str:
    if epoch_seconds is None:
        return "unknown time"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch_seconds))


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _page(title: str, body: Sequence[str], *, summary: str = "") -> str:
    meta = f'<meta name="outcome" content="{escape(summary)}">' if summary else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"{meta}<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], *, raw: bool = False, css_class: str = "") -> str:
    """`raw`: cells are HTML already (escaped by the caller)."""
    cell = (lambda v: v) if raw else escape
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<table{attribute}><tr>{head}</tr>{body}</table>"


# --- the story at the top -------------------------------------------------------------------


def verdict(report: RunReport) -> tuple[str, str]:
    """(css class, one sentence) saying how the run ended."""
    if report.failed or report.error:
        where = f" in {', '.join(report.failed)}" if report.failed else ""
        why = f" {report.error}." if report.error else ""
        return "bad", f"The run failed{where}: nothing was pushed.{why}"
    evaluation, push, live = report.evaluation, report.push, report.live_check
    if push is not None and push.pushed and push.cached:
        return "neutral", f"Nothing new: this model was already pushed as version {push.version}."
    if push is not None and push.pushed:
        text = f"The model was blessed and pushed as version {push.version}"
        if live is not None:
            text += "; the live check passed." if live.ok else "; but the live check FAILED."
            return ("good" if live.ok else "bad"), text
        return "good", text + "."
    if evaluation is not None and evaluation.blessed is False:
        return "bad", "The model was NOT blessed, so nothing was pushed and the served version is unchanged."
    if report.infra is not None and not report.infra.blessed:
        return "bad", "The model did not pass infra validation, so nothing was pushed."
    if push is not None and not push.pushed:
        return "neutral", "Nothing was pushed."
    return "neutral", "The run did not reach the Pusher."


def story(report: RunReport) -> list[str]:
    """Plain sentences, in pipeline order, for someone who has never seen the pipeline."""
    lines = []
    ran = [c.node_id for c in report.components if c.state == RAN]
    cached = [c.node_id for c in report.components if c.state == CACHED]
    if cached:
        lines.append(f"{len(ran)} component(s) ran; {len(cached)} reused their earlier outputs from ML Metadata's cache "
                     f"({', '.join(cached)}).")
    elif ran:
        lines.append(f"All {len(ran)} components ran (nothing came from the cache).")
    data = report.data
    if data and data.split_counts:
        counts = ", ".join(f"{n} {split}" for split, n in data.split_counts.items())
        classes = f" in {len(data.class_names)} classes" if data.class_names else ""
        lines.append(f"Data: {counts} examples{classes}.")
    training = report.training
    if training and training.series:
        best = training.best_epoch()
        text = f"Training ran {training.epochs} epoch(s)"
        if best:
            text += f"; the best was epoch {best[0]} ({best[1]}), whose weights were kept"
        lines.append(text + ".")
    evaluation = report.evaluation
    if evaluation and evaluation.accuracy is not None:
        text = f"Evaluation: accuracy {evaluation.accuracy:.4f}"
        if evaluation.lower_bound is not None:
            text += f" against the floor {evaluation.lower_bound:g}"
        if evaluation.baseline_accuracy is not None:
            text += f" and the previous blessed model's {evaluation.baseline_accuracy:.4f}"
            if evaluation.max_drop is not None:
                text += f" (allowed drop {evaluation.max_drop:g})"
        elif evaluation.lower_bound is not None:
            text += " (no blessed model yet to compare with)"
        verdict_word = {True: "blessed", False: "NOT blessed", None: "no verdict"}[evaluation.blessed]
        lines.append(f"{text}: {verdict_word}.")
    if report.infra is not None:
        infra = report.infra
        if infra.blessed:
            lines.append(f"Infra validation: the model loaded in {infra.server or 'a model server'} and answered "
                         f"{len(infra.requests)} request(s).")
        else:
            lines.append(f"Infra validation FAILED: {infra.failure_reason or 'no reason recorded'}.")
    live = report.live_check
    if live is not None:
        where = f" on {len(live.endpoints)} endpoint(s)" if live.endpoints else ""
        lines.append(f"Live check{where}: version {live.version} is served and answers like the model in process."
                     if live.ok else f"Live check FAILED for version {live.version}: {live.summary}")
    return lines


def outcome(report: RunReport) -> str:
    """A few words for the index: how the run ended."""
    if report.failed:
        return f"{', '.join(report.failed)} failed"
    if report.error:
        return "failed"
    parts = []
    if report.evaluation is not None and report.evaluation.accuracy is not None:
        parts.append(f"accuracy {report.evaluation.accuracy:.4f}")
    push = report.push
    if push is not None and push.pushed and push.cached:
        parts.append(f"already pushed as version {push.version}")
    elif push is not None and push.pushed:
        parts.append(f"pushed version {push.version}")
    elif report.evaluation is not None and report.evaluation.blessed is False:
        parts.append("not blessed")
    elif push is not None:
        parts.append("nothing pushed")
    if report.live_check is not None:
        parts.append("live check passed" if report.live_check.ok else "live check FAILED")
    return ", ".join(parts) or "did not reach the Pusher"


# --- sections -------------------------------------------------------------------------------


def dag_section(report: RunReport) -> list[str]:
    nodes = []
    for component in report.components:
        if component.state in (RAN, CACHED, FAILED):
            detail = f"{component.state} {_seconds(component.seconds)}"
        else:
            detail = component.state
        nodes.append((component.node_id, component.state, detail))
    upstream = {c.node_id: c.upstream for c in report.components}
    legend = "".join(
        f'<span><i style="background:{svg.STATE_COLOURS[s]}"></i>{escape(s)}</span>' for s in (RAN, CACHED, FAILED, NOT_RUN)
    )
    total = sum(c.seconds or 0.0 for c in report.components)
    return [
        "<h2>Pipeline</h2>",
        '<p class="note">Each box is a component: <b>ran</b> means it executed in this run, <b>cached</b> that '
        "ML Metadata supplied the outputs of an identical earlier execution. Arrows follow the artifacts.</p>",
        f'<div class="legend">{legend}</div>',
        svg.dag(nodes, upstream) if nodes else "<p>No component ran.</p>",
        f'<p class="note">Sum of component times {total:.1f} s.</p>',
    ]


def data_section(data: Optional[DataSummary]) -> list[str]:
    out = ["<h2>Data</h2>"]
    if data is None:
        return out + ["<p>No statistics recorded for this run.</p>"]
    if data.split_counts:
        out.append("<p>" + escape(", ".join(f"{split}: {n} examples" for split, n in data.split_counts.items())) + "</p>")
    pictures = []
    if data.class_counts:
        splits = list(data.class_counts)
        names = list(dict.fromkeys(name for counts in data.class_counts.values() for name in counts))
        groups = {split: [float(data.class_counts[split].get(name, 0)) for name in names] for split in splits}
        pictures.append(svg.bar_chart(names, groups, title="Examples per class", width=max(420, min(900, 60 * len(names) + 80))))
    if data.samples:
        figures = []
        for sample in data.samples:
            uri = svg.png_data_uri(sample.pixels, sample.height, sample.width, sample.channels)
            scale = max(1, 64 // max(sample.height, sample.width))
            figures.append(
                f'<figure><img class="sample" alt="{escape(sample.label)}" width="{sample.width * scale}" '
                f'height="{sample.height * scale}" src="{uri}"><figcaption>{escape(sample.label)}</figcaption></figure>'
            )
        pictures.append('<div><b>Sample train images</b><div class="row" style="gap:8px;margin-top:8px">' + "".join(figures) + "</div></div>")
    if pictures:
        out.append('<div class="row">' + "".join(pictures) + "</div>")
    if data.features:
        rows = [
            (f.name, f.split, f.kind, f.count, f.missing,
             "-" if f.minimum is None else f"{f.minimum:g}", "-" if f.mean is None else f"{f.mean:.4g}",
             "-" if f.maximum is None else f"{f.maximum:g}",
             "-" if f.values_per_example is None else f"{f.values_per_example:g}")
            for f in data.features
        ]
        out.append("<p class=\"note\">Feature statistics (TFDV, from StatisticsGen):</p>")
        out.append(_table(("feature", "split", "type", "examples", "missing", "min", "mean", "max", "values/example"), rows))
    return out


def training_section(history: Optional[TrainingHistory]) -> list[str]:
    out = ["<h2>Training</h2>"]
    if history is None or not history.series:
        return out + [f"<p>{NO_HISTORY} (the Trainer wrote no TensorBoard scalars under its model_run directory).</p>"]
    best = history.best_epoch()
    marker = (best[0], f"best epoch {best[0]}") if best else (None, "")
    charts = []
    for word, title in (("loss", "Loss per epoch"), ("accuracy", "Accuracy per epoch")):
        series = history.metric(word)
        if series:
            charts.append(svg.line_chart(series, title=title, marker_x=marker[0], marker_label=marker[1]))
    others = {name: points for name, points in history.series.items() if "loss" not in name and "accuracy" not in name}
    for name, points in sorted(others.items())[:4]:
        charts.append(svg.line_chart({name: points}, title=name, marker_x=marker[0], marker_label=marker[1]))
    out.append('<div class="row">' + "".join(charts) + "</div>")
    if best:
        values = ", ".join(
            f"{name} {dict(points)[best[0]]:.4f}" for name, points in history.series.items() if best[0] in dict(points)
        )
        out.append(f"<p>Best epoch {best[0]} of {history.epochs} ({escape(best[1])}): {escape(values)}.</p>")
    if history.source:
        out.append(f'<p class="note">Read from the TensorBoard logs in <code>{escape(history.source)}</code>.</p>')
    return out


def _mark(passed: Optional[bool]) -> str:
    if passed is None:
        return "-"
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def evaluation_section(evaluation: Optional[Evaluation]) -> list[str]:
    out = ["<h2>Evaluation</h2>"]
    if evaluation is None or evaluation.accuracy is None:
        return out + ["<p>No evaluation recorded for this run.</p>"]
    marks = [("candidate", evaluation.accuracy, "value")]
    bounds = []
    if evaluation.baseline_accuracy is not None:
        marks.append(("baseline", evaluation.baseline_accuracy, "value"))
    if evaluation.lower_bound is not None:
        marks.append(("floor", evaluation.lower_bound, "bound"))
        bounds.append(evaluation.lower_bound)
    if evaluation.baseline_accuracy is not None and evaluation.max_drop is not None:
        marks.append(("baseline - allowed drop", evaluation.baseline_accuracy - evaluation.max_drop, "bound"))
        bounds.append(evaluation.baseline_accuracy - evaluation.max_drop)
    accept = max(bounds) if bounds else None
    out.append(svg.threshold_scale(marks, title=f"{evaluation.metric}: candidate against the thresholds", accept_from=accept))
    out.append('<p class="note">Blessed when the candidate lies in the green band: at or above every red line '
               "(the floor and, once a model was blessed, the baseline minus the allowed drop).</p>")
    rows = []
    if evaluation.lower_bound is not None:
        rows.append((f"{escape(evaluation.metric)} &ge; floor", f"{evaluation.accuracy:.4f}", f"&ge; {evaluation.lower_bound:g}",
                     _mark(evaluation.accuracy >= evaluation.lower_bound)))
    if evaluation.max_drop is not None:
        if evaluation.baseline_accuracy is not None:
            bound = evaluation.baseline_accuracy - evaluation.max_drop
            rows.append(("no worse than the baseline", f"{evaluation.accuracy:.4f}",
                         f"&ge; {evaluation.baseline_accuracy:.4f} - {evaluation.max_drop:g} = {bound:.4f}",
                         _mark(evaluation.accuracy >= bound - 1e-12)))
        else:
            rows.append(("no worse than the baseline", f"{evaluation.accuracy:.4f}", "no blessed baseline yet: skipped", "-"))
    if rows:
        out.append(_table(("check", "candidate", "threshold", "result"), rows, raw=True))
    blessed = {True: '<span class="pass">BLESSED</span>', False: '<span class="fail">NOT blessed</span>', None: "no verdict"}
    count = f" on {evaluation.example_count} eval examples" if evaluation.example_count else ""
    out.append(f"<p>Verdict: {blessed[evaluation.blessed]}{escape(count)}.</p>")
    if evaluation.failures:
        out.append("<ul>" + "".join(f"<li>{escape(f)}</li>" for f in evaluation.failures) + "</ul>")
    pictures = []
    if evaluation.confusion and evaluation.confusion_labels:
        pictures.append(svg.heatmap(evaluation.confusion_labels, evaluation.confusion, title="Confusion matrix (eval split)"))
    if evaluation.per_class_accuracy:
        names = list(evaluation.per_class_accuracy)
        values = [evaluation.per_class_accuracy[n] for n in names]
        pictures.append(svg.bar_chart(
            names, {"accuracy": values}, title="Accuracy per true class", value_format="{:.2f}",
            reference=(evaluation.accuracy, f"overall {evaluation.accuracy:.3f}"),
            low=max(0.0, min(values + [evaluation.accuracy]) - 0.1), high=1.0,
            width=max(420, min(900, 44 * len(names) + 80)),
        ))
    if pictures:
        out.append('<div class="row">' + "".join(pictures) + "</div>")
    elif not evaluation.confusion:
        out.append('<p class="note">No confusion matrix in this evaluation (its eval config has no MultiClassConfusionMatrixPlot).</p>')
    return out


def infra_section(infra: Optional[InfraValidation]) -> list[str]:
    out = ["<h2>Infra validation</h2>"]
    if infra is None:
        return out + ["<p>No InfraValidator in this run.</p>"]
    state = '<span class="pass">blessed</span>' if infra.blessed else '<span class="fail">NOT blessed</span>'
    out.append(f"<p>{state}: mode {escape(infra.mode or 'unknown')}, server {escape(infra.server or 'unknown')}, "
               f"{infra.attempts} attempt(s).</p>")
    if not infra.blessed and infra.failure_reason:
        out.append(f"<p class=\"fail\">{escape(infra.failure_reason)}</p>")
    phases = [(name, value) for name, value in (("server start", infra.server_start_seconds), ("model load", infra.load_seconds),
                                                 ("requests", infra.query_seconds)) if value is not None]
    if phases:
        out.append(svg.hbar_chart(phases, title="Infra validation time"))
    if infra.requests:
        counts = Counter(infra.requests)
        items = "".join(f"<li>{n} &times; {escape(r)}</li>" if n > 1 else f"<li>{escape(r)}</li>" for r, n in counts.items())
        out.append(f"<p>{len(infra.requests)} request(s) sent and answered:</p><ul>{items}</ul>" if infra.blessed
                   else f"<p>{len(infra.requests)} request(s) planned:</p><ul>{items}</ul>")
    if infra.skipped:
        out.append("<p class=\"note\">Not queried:</p><ul class=\"note\">" + "".join(f"<li>{escape(s)}</li>" for s in infra.skipped) + "</ul>")
    return out


def push_section(push: Optional[Push], live: Optional[LiveCheck]) -> list[str]:
    out = ["<h2>Push and live check</h2>"]
    if push is None:
        out.append("<p>The Pusher did not run.</p>")
    elif push.pushed and push.cached:
        out.append(f"<p>Nothing new to push: this model and blessing were already pushed as version "
                   f"<b>{escape(str(push.version))}</b> (<code>{escape(push.destination or '')}</code>).</p>")
    elif push.pushed:
        out.append(f"<p>Pushed version <b>{escape(str(push.version))}</b> to <code>{escape(push.destination or '')}</code>.</p>")
    else:
        out.append("<p>Nothing pushed: the serving directory is unchanged.</p>")
    if live is None:
        out.append('<p class="note">No live check recorded for this run.</p>')
    else:
        state = '<span class="pass">passed</span>' if live.ok else '<span class="fail">FAILED</span>'
        out.append(f"<p>Live check {state} for version {escape(str(live.version))}:</p>")
        out.append("<ul>" + "".join(f"<li>{escape(e)}</li>" for e in live.endpoints or (live.summary,)) + "</ul>")
    return out


def render_run(report: RunReport, *, index_name: str = "index.html") -> str:
    """The whole report page for one run."""
    css, sentence = verdict(report)
    lines = story(report)
    body = [
        f'<p class="meta"><a href="{escape(index_name)}">all runs</a></p>',
        f"<h1>{escape(report.pipeline_name)}: run {escape(report.run_id)}</h1>",
        f'<p class="meta">started {_fmt_time(report.started)}'
        + (f", {report.seconds:.1f} s" if report.seconds is not None else "")
        + (f" &middot; pipeline root <code>{escape(report.pipeline_root)}</code>" if report.pipeline_root else "")
        + "</p>",
        f'<div class="verdict {css}"><b>{escape(sentence)}</b>'
        + ('<ul class="story">' + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>" if lines else "")
        + "</div>",
    ]
    body += dag_section(report)
    body += data_section(report.data)
    body += training_section(report.training)
    body += evaluation_section(report.evaluation)
    body += infra_section(report.infra)
    body += push_section(report.push, report.live_check)
    if report.notes:
        body.append("<h2>Not shown</h2><ul class=\"note\">" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    return _page(f"{report.pipeline_name} run {report.run_id}", body, summary=outcome(report))


def render_index(title: str, entries: Sequence[RunEntry]) -> str:
    """Every run, newest first, linking to its report; a pipeline column when there are several."""
    several = len({e.pipeline_name for e in entries}) > 1
    rows = []
    for e in sorted(entries, key=lambda e: (e.started or 0.0, e.run_id), reverse=True):
        link = f'<a href="{escape(e.file_name)}">{escape(e.run_id)}</a>' if e.file_name else escape(e.run_id)
        rows.append(((escape(e.pipeline_name),) if several else ()) + (link, escape(_fmt_time(e.started)), escape(e.outcome)))
    header = (("pipeline",) if several else ()) + ("run", "started", "outcome")
    body = [f"<h1>Pipeline runs</h1><p class=\"meta\"><code>{escape(title)}</code></p>",
            _table(header, rows, raw=True, css_class="text") if rows else "<p>No runs recorded.</p>"]
    return _page(f"runs in {title}", body)
