"""One-line summaries of an InfraBlessing artifact for the pipeline's run summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

from tfx import types

from components.infra_validator import spec


@dataclass(frozen=True)
class InfraValidationResult:
    """What the InfraValidator recorded on its blessing."""

    blessed: bool
    mode: str
    server: str
    failure_reason: str
    attempts: int
    server_start_seconds: Optional[float]
    load_seconds: Optional[float]
    query_seconds: Optional[float]
    num_requests: int
    skipped: tuple[str, ...]

    def summary(self) -> str:
        if not self.blessed:
            tries = f" after {self.attempts} attempt(s)" if self.attempts else ""
            return f"InfraValidator: NOT blessed{tries}: {self.failure_reason or 'no reason recorded'}"
        parts = [f"InfraValidator: blessed ({self.mode or 'mode unknown'}) by {self.server or 'unknown server'}"]
        if self.load_seconds is not None:
            start = f"server up {self.server_start_seconds:.1f} s, " if self.server_start_seconds is not None else ""
            parts.append(f"{start}model loaded in {self.load_seconds:.1f} s")
        if self.num_requests:
            parts.append(f"{self.num_requests} request(s) answered in {self.query_seconds or 0.0:.3f} s")
        if self.attempts > 1:
            parts.append(f"{self.attempts} attempts")
        return ", ".join(parts)


def _float(blessing: types.Artifact, key: str) -> Optional[float]:
    return blessing.get_float_custom_property(key) if blessing.has_custom_property(key) else None


def read_blessing(blessing: types.Artifact) -> InfraValidationResult:
    """The InfraValidator's verdict, reasons and timings from an InfraBlessing artifact."""
    skipped = blessing.get_string_custom_property(spec.SKIPPED_KEY) if blessing.has_custom_property(spec.SKIPPED_KEY) else ""
    return InfraValidationResult(
        blessed=blessing.get_int_custom_property(spec.BLESSED_KEY) == 1,
        mode=blessing.get_string_custom_property(spec.MODE_KEY),
        server=blessing.get_string_custom_property(spec.SERVER_KEY),
        failure_reason=blessing.get_string_custom_property(spec.FAILURE_REASON_KEY),
        attempts=blessing.get_int_custom_property(spec.ATTEMPTS_KEY),
        server_start_seconds=_float(blessing, spec.SERVER_START_SECONDS_KEY),
        load_seconds=_float(blessing, spec.LOAD_SECONDS_KEY),
        query_seconds=_float(blessing, spec.QUERY_SECONDS_KEY),
        num_requests=blessing.get_int_custom_property(spec.NUM_REQUESTS_KEY),
        skipped=tuple(json.loads(skipped)) if skipped else (),
    )


def summarize_blessing(blessing: types.Artifact) -> str:
    """One line for the run summary, e.g. "InfraValidator: NOT blessed after 1 attempt(s): ..."."""
    return read_blessing(blessing).summary()
