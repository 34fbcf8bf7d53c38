"""The peers benchmark's pure parts: wrk's summary line, answer formats, the answer check, ranges."""

from __future__ import annotations

from types import ModuleType

import pytest

# The script the `bench` fixture (conftest.py) imports.
SCRIPT = "bench_peers"


WRK_STDOUT = """Running 5s test @ http://127.0.0.1:40000/v1/models/bench:predict
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.10ms    3.02ms  40.00ms   80.00%
    Req/Sec     1.32k   100.00     1.50k    70.00%
  6600 requests in 5.00s, 1.20MB read
  Non-2xx or 3xx responses: 3
WRK_JSON {"requests": 6600, "duration_us": 5000000, "connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 2, "p50_us": 11500, "p99_us": 30250, "max_us": 40000}
Requests/sec:   1320.00
Transfer/sec:    245.00KB
"""


def test_parse_wrk_reads_the_lua_summary_line(bench: ModuleType) -> None:
    result = bench.parse_wrk(WRK_STDOUT)
    assert result == {"rps": 1320.0, "requests": 6600, "p50": 11.5, "p99": 30.25, "errors": 6}


def test_parse_wrk_without_the_summary_line_names_what_is_missing(bench: ModuleType) -> None:
    with pytest.raises(ValueError, match="no WRK_JSON line"):
        bench.parse_wrk("Running 5s test @ http://127.0.0.1:1/\nunable to connect to 127.0.0.1:1\n")


def test_the_lua_script_prints_every_field_parse_wrk_reads(bench: ModuleType) -> None:
    for field in ("requests", "duration_us", "connect", "read", "write", "status", "timeout", "p50_us", "p99_us"):
        assert f'"{field}": %d' in bench.WRK_LUA


@pytest.mark.parametrize("document", [
    {"predictions": [{"class_id": 3, "probabilities": [0.25, 0.75]}, {"class_id": 1, "probabilities": [1.0, 0.0]}]},
    {"predictions": {"class_id": [3, 1], "probabilities": [[0.25, 0.75], [1.0, 0.0]]}},
    {"outputs": [{"name": "class_id", "shape": [2], "datatype": "INT64", "data": [3, 1]},
                 {"name": "probabilities", "shape": [2, 2], "datatype": "FP32", "data": [0.25, 0.75, 1.0, 0.0]}]},
])
def test_outputs_from_json_reads_row_column_and_v2_formats(bench: ModuleType, document: dict) -> None:
    assert bench.outputs_from_json(document) == {"class_id": [3, 1], "probabilities": [[0.25, 0.75], [1.0, 0.0]]}


EXPECTED = {"class_id": [3, 1], "class_name": ["three", "one"], "probabilities": [[0.25, 0.75], [1.0, 0.0]]}


def test_compare_outputs_accepts_float_noise_within_tolerance_and_a_subset_of_outputs(bench: ModuleType) -> None:
    got = {"class_id": [3, 1], "probabilities": [[0.250001, 0.75], [1.0, 0.000001]]}
    assert bench.compare_outputs(EXPECTED, got) is None


@pytest.mark.parametrize("got, why", [
    ({"probabilities": [[0.3, 0.7], [1.0, 0.0]]}, "probabilities: max abs difference"),
    ({"class_id": [3, 2]}, "class_id"),
    ({"class_name": ["three", "two"]}, "class_name"),
    ({"class_id": [[3], [1]]}, "shape"),
    ({"logits": [1, 2]}, "unexpected output 'logits'"),
    ({}, "no outputs"),
])
def test_compare_outputs_names_the_difference(bench: ModuleType, got: dict, why: str) -> None:
    assert why in bench.compare_outputs(EXPECTED, got)


def test_an_unnamed_single_output_is_matched_by_shape(bench: ModuleType) -> None:
    assert bench.compare_outputs(EXPECTED, bench.outputs_from_json({"predictions": [[0.25, 0.75], [1.0, 0.0]]})) is None


def test_summarize_gives_median_and_range_and_skips_nan(bench: ModuleType) -> None:
    assert bench.summarize([3.0, float("nan"), 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0}
