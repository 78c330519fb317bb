"""How integration tests find their servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from choreograph.testing.servers import (
    BOOTSTRAP_ENV,
    REGISTRY_ENV,
    ServersUnavailable,
    find_stack_script,
    from_env,
)


def test_environment_wins_and_trailing_slash_is_dropped() -> None:
    found = from_env(
        {BOOTSTRAP_ENV: "broker:9092", REGISTRY_ENV: "http://sr:8081/apis/ccompat/v7/"}
    )
    assert found is not None
    assert (found.bootstrap, found.registry_url) == (
        "broker:9092",
        "http://sr:8081/apis/ccompat/v7",
    )


def test_half_configured_environment_is_an_error_naming_the_missing_variable() -> None:
    with pytest.raises(ServersUnavailable, match=REGISTRY_ENV):
        from_env({BOOTSTRAP_ENV: "broker:9092"})


def test_no_environment_means_look_elsewhere() -> None:
    assert from_env({}) is None


def test_stack_script_is_found_from_a_nested_folder(tmp_path: Path) -> None:
    script = tmp_path / "deploy" / "local" / "stack.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    assert find_stack_script(nested) == script
