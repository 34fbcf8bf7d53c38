"""The pure report renderer: plain data in, self-contained HTML with SVG pictures out."""

from __future__ import annotations

import io
import re

from PIL import Image

from pipeline.report import render, svg
from pipeline.report.model import (
    CACHED,
    FAILED,
    NOT_RUN,
    RAN,
    ComponentRun,
    DataSummary,
    Evaluation,
    InfraValidation,
    LiveCheck,
    Push,
    RunEntry,
    RunReport,
    SampleImage,
    TrainingHistory,
)

HISTORY = TrainingHistory(
    series={
        "train loss": [(1, 1.2), (2, 0.6), (3, 0.4), (4, 0.35)],
        "validation loss": [(1, 0.9), (2, 0.5), (3, 0.45), (4, 0.47)],
        "train accuracy": [(1, 0.6), (2, 0.8), (3, 0.88), (4, 0.9)],
        "validation accuracy": [(1, 0.7), (2, 0.86), (3, 0.93), (4, 0.93)],
    },
    source="/root/Trainer/model_run/6",
)


def _report(**changes) -> RunReport:
    report = RunReport(
        pipeline_name="digits-pipeline",
        run_id="20261203-182450.331649",
        started=1796322290.0,
        seconds=61.5,
        pipeline_root="/root",
        components=[
            ComponentRun("ExampleGen", CACHED, 0.2),
            ComponentRun("Trainer", RAN, 23.6, ("ExampleGen",)),
            ComponentRun("Evaluator", RAN, 18.5, ("ExampleGen", "Trainer")),
            ComponentRun("Pusher", RAN, 0.4, ("Trainer", "Evaluator")),
        ],
        data=DataSummary(
            split_counts={"train": 30, "eval": 12},
            class_counts={"train": {"cat": 17, "dog": 13}, "eval": {"cat": 5, "dog": 7}},
            samples=[SampleImage("cat", 2, 2, 1, bytes([0, 255, 128, 64]))],
            class_names=["cat", "dog"],
        ),
        training=HISTORY,
        evaluation=Evaluation(
            accuracy=0.9167, baseline_accuracy=0.9, lower_bound=0.85, max_drop=0.01, blessed=True,
            per_class_accuracy={"cat": 1.0, "dog": 0.8571}, confusion_labels=["cat", "dog"],
            confusion=[[5.0, 0.0], [1.0, 6.0]], example_count=12,
        ),
        infra=InfraValidation(True, "LOAD_AND_QUERY", "embedded server", attempts=1, server_start_seconds=2.5,
                              load_seconds=0.1, query_seconds=0.25, requests=("Predict on 'serving_default'", "Classify")),
        push=Push(True, "2", "/serving/digits/2"),
        live_check=LiveCheck(True, 2, "live check passed: 'digits' version 2", ("grpc 127.0.0.1:1: AVAILABLE",)),
    )
    for key, value in changes.items():
        setattr(report, key, value)
    return report


def test_page_is_self_contained() -> None:
    page = render.render_run(_report())
    assert page.startswith("<!DOCTYPE html>")
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page
    for attribute, value in re.findall(r'\b(src|href)="([^"]*)"', page):
        assert value.startswith("data:image/png;base64,") or (attribute == "href" and value == "index.html"), value
    assert "<link" not in page and "@import" not in page


def test_dag_shows_every_component_with_state_and_time() -> None:
    page = render.render_run(_report())
    nodes = dict(re.findall(r'data-node="([^"]+)" data-state="([^"]+)"', page))
    assert nodes == {"ExampleGen": CACHED, "Trainer": RAN, "Evaluator": RAN, "Pusher": RAN}
    assert ">cached 0.2 s<" in page and ">ran 23.6 s<" in page
    # One arrow per producer -> consumer pair: 1 + 2 + 2.
    dag = page[page.index('aria-label="pipeline DAG"'):]
    dag = dag[: dag.index("</svg>")]
    assert dag.count('marker-end="url(#arrow)"') == 5


def test_dag_columns_follow_the_longest_path() -> None:
    columns = svg.layers(["a", "b", "c", "d"], {"b": ["a"], "c": ["a", "b"], "d": ["d"]})
    assert columns == {"a": 0, "b": 1, "c": 2, "d": 0}


def test_training_curves_mark_the_best_epoch() -> None:
    assert HISTORY.best_epoch() == (3, "highest validation accuracy")  # epochs 3 and 4 tie: the first
    page = render.render_run(_report())
    assert page.count('aria-label="Loss per epoch"') == 1 and page.count('aria-label="Accuracy per epoch"') == 1
    assert page.count('class="best"') == 2 and "best epoch 3" in page
    assert "Best epoch 3 of 4 (highest validation accuracy)" in page
    assert "validation accuracy 0.9300" in page


def test_best_epoch_falls_back_to_validation_loss_then_none() -> None:
    losses = TrainingHistory({"train loss": [(1, 1.0), (2, 0.5)], "validation loss": [(1, 0.8), (2, 0.9)]})
    assert losses.best_epoch() == (1, "lowest validation loss")
    assert TrainingHistory({"train loss": [(1, 1.0)]}).best_epoch() is None


def test_no_history_says_so() -> None:
    page = render.render_run(_report(training=None))
    assert render.NO_HISTORY in page
    assert 'class="best"' not in page


def test_evaluation_against_thresholds_confusion_matrix_and_per_class() -> None:
    page = render.render_run(_report())
    assert "&ge; 0.9000 - 0.01 = 0.8900" in page and "&ge; 0.85" in page
    assert page.count('<span class="pass">pass</span>') == 2
    cells = re.findall(r'<rect class="cell"[^>]*><title>([^<]*)</title>', page)
    assert cells == [
        "actual cat, predicted cat: 5", "actual cat, predicted dog: 0",
        "actual dog, predicted cat: 1", "actual dog, predicted dog: 6",
    ]
    bars = re.findall(r'<rect class="bar"[^>]*><title>([^<]*)</title>', page)
    assert "cat accuracy: 1.00" in bars and "dog accuracy: 0.86" in bars
    assert "cat train: 17" in bars and "dog eval: 7" in bars
    assert "overall 0.917" in page and "on 12 eval examples" in page


def test_first_run_without_baseline_and_a_failed_threshold() -> None:
    evaluation = Evaluation(accuracy=0.8, lower_bound=0.85, max_drop=0.01, blessed=False,
                            failures=["sparse_categorical_accuracy 0.8000, expected >= 0.85"])
    page = render.render_run(_report(evaluation=evaluation, push=Push(False), live_check=None))
    assert "no blessed baseline yet: skipped" in page
    assert '<span class="fail">FAIL</span>' in page
    assert "The model was NOT blessed" in page and "expected &gt;= 0.85" in page
    assert "Nothing pushed: the serving directory is unchanged." in page


def test_failed_component_leads_the_page() -> None:
    components = [ComponentRun("ExampleGen", RAN, 1.0), ComponentRun("Trainer", FAILED, 3.0, ("ExampleGen",)),
                  ComponentRun("Pusher", NOT_RUN)]
    report = _report(components=components, evaluation=None, infra=None, push=None, live_check=None,
                     error="Trainer failed: label column 'label' has negative value -1")
    page = render.render_run(report)
    assert ("The run failed in Trainer: nothing was pushed. Trainer failed: label column &#x27;label&#x27; "
            "has negative value -1.") in page
    assert render.outcome(report) == "Trainer failed"
    assert 'data-node="Pusher" data-state="not run"' in page


def test_sample_images_are_embedded_pngs() -> None:
    page = render.render_run(_report())
    uri = re.search(r'<img class="sample" alt="cat"[^>]* src="data:image/png;base64,([^"]+)"', page)[1]
    import base64

    image = Image.open(io.BytesIO(base64.b64decode(uri)))
    assert image.size == (2, 2) and list(image.getdata()) == [0, 255, 128, 64]


def test_png_of_rgb_pixels_round_trips() -> None:
    pixels = bytes(range(2 * 3 * 3))
    image = Image.open(io.BytesIO(svg.png_bytes(pixels, 2, 3, 3)))
    assert image.mode == "RGB" and image.size == (3, 2) and image.tobytes() == pixels


def test_infra_push_and_live_check() -> None:
    page = render.render_run(_report())
    assert "<li>Predict on &#x27;serving_default&#x27;</li>" in page and "<li>Classify</li>" in page
    assert "2 request(s) sent and answered" in page
    assert 'aria-label="Infra validation time"' in page and "<title>server start: 2.5 s</title>" in page
    assert "Pushed version <b>2</b>" in page and "grpc 127.0.0.1:1: AVAILABLE" in page
    assert render.outcome(_report()) == "accuracy 0.9167, pushed version 2, live check passed"


def test_cached_push_says_nothing_new() -> None:
    page = render.render_run(_report(push=Push(True, "1", "/serving/digits/1", cached=True), live_check=None))
    assert "Nothing new: this model was already pushed as version 1." in page


def test_index_lists_runs_newest_first() -> None:
    entries = [RunEntry("r1", "p-r1.html", 100.0, "pushed version 1", "p"),
               RunEntry("r2", "p-r2.html", 200.0, "not blessed", "p"),
               RunEntry("r0", "", 50.0, "no report yet", "p")]
    page = render.render_index("/root", entries)
    assert re.findall(r"<tr><td>(.*?)</td>", page) == ['<a href="p-r2.html">r2</a>', '<a href="p-r1.html">r1</a>', "r0"]
    assert "http" not in page


def test_text_is_escaped() -> None:
    page = render.render_run(_report(pipeline_name="<b>x</b>", notes=["a <script> note"]))
    assert "<b>x</b>:" not in page and "&lt;b&gt;x&lt;/b&gt;" in page and "<script>" not in page
