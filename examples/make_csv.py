"""Writes scikit-learn's bundled wine data as a CSV: its own column names, class names as the `label`.

    .venv/bin/python examples/make_csv.py runs/wine.csv
"""

from __future__ import annotations

import sys
from pathlib import Path


def write_wine_csv(path: Path) -> Path:
    """178 rows, 13 numeric columns (e.g. `od280/od315_of_diluted_wines`), label class_0..class_2."""
    from sklearn.datasets import load_wine

    wine = load_wine()
    lines = [",".join([*wine.feature_names, "label"])]
    lines += [",".join(f"{v:g}" for v in row) + f",{wine.target_names[t]}" for row, t in zip(wine.data, wine.target)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: make_csv.py OUT.csv")
    print(write_wine_csv(Path(sys.argv[1])))
