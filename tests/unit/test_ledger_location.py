"""A ledger location with a password never becomes a flow parameter (issue 24, point 3): the
Python API refuses it before a run exists, a deployment's parameter schema refuses it when the
Prefect server creates the run, and a database that cannot be reached is one line."""

from __future__ import annotations

import pytest

from mwingest import api
from mwingest.dev.devwiki import free_port

WITH_PASSWORD = "postgresql+psycopg://mwingest:pw-canary-9931@db.example.org:5433/mwingest"


def test_the_python_api_refuses_a_password_before_any_run(tmp_path):
    with pytest.raises(api.IngestSetupError, match="carries a password") as caught:
        api.ingest([str(tmp_path)], ledger_path=WITH_PASSWORD, check_connection=False)
    assert "pw-canary-9931" not in str(caught.value)
    with pytest.raises(api.IngestSetupError, match="carries a password"):
        api.resolve("abcdef123456", "skip", ledger_path=WITH_PASSWORD, check_connection=False)


@pytest.mark.parametrize(("flow_path", "parameter", "extra"), [
    ("flows.resolve:resolve_review", "ledger_path", {"item_id": "x", "decision": "skip"}),
    ("flows.fanout:report_import", "ledger", {"plan_id": "p"}),
])
def test_a_deployments_schema_refuses_a_password_the_way_the_server_checks_it(
        flow_path, parameter, extra):
    """``prefect.utilities.schema_tools.validate`` is what the server runs on a deployment's
    parameters when a run is created (``create_flow_run_from_deployment``)."""
    import importlib

    from prefect.utilities.callables import parameter_schema
    from prefect.utilities.schema_tools import ValidationError, validate

    module, name = flow_path.split(":")
    flow = getattr(importlib.import_module(module), name)
    schema = parameter_schema(flow.fn).model_dump_for_openapi()
    validate({**extra, parameter: "postgresql+psycopg://mwingest@db/mwingest"}, schema,
             raise_on_error=True)
    with pytest.raises(ValidationError):
        validate({**extra, parameter: WITH_PASSWORD}, schema, raise_on_error=True)


def test_the_settings_schema_refuses_a_password_too():
    from prefect.utilities.schema_tools import ValidationError, validate

    from mwingest.job.settings import BatchSettings

    schema = BatchSettings.model_json_schema()
    validate({"ledger_path": "/srv/ledger.sqlite3"}, schema, raise_on_error=True)
    with pytest.raises(ValidationError):
        validate({"ledger_path": WITH_PASSWORD}, schema, raise_on_error=True)


def test_an_unreachable_ledger_database_is_one_line_with_host_and_port():
    port = free_port()
    with pytest.raises(api.IngestSetupError) as caught:
        api.check_ledger(f"postgresql+psycopg://mwingest@127.0.0.1:{port}/mwingest")
    said = str(caught.value)
    assert f"127.0.0.1:{port}" in said and "\n" not in said, said
