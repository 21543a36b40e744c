"""``prefect.yaml`` is what :mod:`deployments.config` says: one source for both ways of deploying."""

from __future__ import annotations

from pathlib import Path

import yaml

from deployments import config
from deployments.prefect_yaml import REPO, render


def test_prefect_yaml_is_generated_from_the_config():
    committed = (REPO / "prefect.yaml").read_text(encoding="utf-8")
    assert committed == render(), "run: python -m deployments.prefect_yaml > prefect.yaml"


def test_every_deployment_names_a_real_flow_with_its_parameters():
    doc = yaml.safe_load(render())
    by_name = {d["name"]: d for d in doc["deployments"]}
    specs = [*config.DEPLOYMENTS, config.NIGHTLY, *config.POOL_ONLY]
    assert set(by_name) == {s.name for s in specs}
    for spec in specs:
        path, fn = by_name[spec.name]["entrypoint"].split(":")
        assert (REPO / path).is_file() and f"def {fn}(" in Path(REPO / path).read_text()
        assert set(by_name[spec.name].get("parameters", {})) == set(spec.parameters)
    nightly = by_name["nightly-drop-folder"]
    assert nightly["parameters"]["settings"] == {"review_timeout_s": 0}
    assert nightly["schedules"][0]["cron"] == config.DEFAULT_CRON
