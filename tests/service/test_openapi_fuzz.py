"""Property-based fuzzing of the API from its own OpenAPI schema (schemathesis; bounded, derandomised).

Every operation gets generated valid (positive) and invalid (negative) requests; every answer must
be a documented status with a body that matches its documented schema, and never a 5xx.

Drives schemathesis' Hypothesis strategies directly: its pytest plugin (``from_fixture``) does not
run under pytest 9 (it reads ``request.node._nodeid``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from service.app import create_app
from service.settings import Settings

MAX_EXAMPLES = 60
CONFIG = SchemathesisConfig.from_dict(
    # 413 (more comments than maxItems) is the right answer to one kind of invalid request.
    {"checks": {"negative_data_rejection": {"expected-statuses": [400, 404, 405, 413, 422]}}}
)


@pytest.fixture(scope="module")
def api_schema(tiny_models_dir: Path) -> schemathesis.BaseSchema:
    app = create_app(
        Settings(
            models_dir=tiny_models_dir, warmup_runs=0, max_wait_ms=1, max_comments_per_request=16, max_text_chars=64
        )
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_api_conforms_to_its_own_schema(api_schema: schemathesis.BaseSchema, mode: GenerationMode) -> None:
    strategy = api_schema.as_strategy(mode)

    @given(data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        case.call_and_validate()

    run()
