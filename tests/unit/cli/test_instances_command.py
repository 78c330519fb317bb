"""`choreograph instances` against a tracker's API on loopback: the console's filters, JSON out,
a batch's dry run, and an exit code with one line that says what is wrong (a refusal, a tracker
that does not answer, a command written wrong)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from choreograph.cli.instances import query_of
from choreograph.cli.main import build_parser, main
from choreograph.testing.testkit import TestKit
from saga_tracker.traces import TraceServer
from tests.ports import free_port
from tests.unit.saga_tracker.test_console_repair import kit as repaired  # noqa: F401 (fixture)
from tests.unit.saga_tracker.test_console_repair import serve


@pytest.fixture(scope="module")
def api(repaired: TestKit) -> Iterator[str]:  # noqa: F811
    srv: TraceServer = serve(repaired)
    yield srv.url
    srv.stop()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["instances", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_filters_like_the_console_and_prints_json(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "list", "--tracker", api, "--token", "platform",
                       "--at-step", "reservation", "--attr", "customer_id=cust-1",
                       "--format", "json")  # fmt: skip
    assert code == 0
    assert {i["correlation_id"] for i in json.loads(out)} == {"c-1", "c-7"}
    code, out, err = run(capsys, "list", "--tracker", api, "--token", "platform", "--limit", "3")
    assert code == 0 and len(out.splitlines()) == 3 and err.strip() == "3 instance(s)"
    assert "customer_id=cust-" in out and "order-fulfilment v3" in out


def test_show_and_totals(api: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "c-3", "--tracker", api, "--token", "platform")
    assert code == 0
    assert out.splitlines()[0] == "c-3: order-fulfilment v3, key c-3, running"
    assert "  customer_id = cust-0" in out and "  reservation: running" in out
    code, out, _ = run(capsys, "totals", "--tracker", api, "--token", "platform",
                       "--format", "json")  # fmt: skip
    assert code == 0 and json.loads(out)["by_status"][0]["count"] == 12


def test_a_batch_dry_run_counts_and_does_nothing(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "redrive", "--at-step", "reservation", "--step", "reservation",
                         "--reason", "inventory fixed", "--dry-run", "--tracker", api,
                         "--token", "alice")  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0] == (
        "redrive reservation would act on 6 instance(s) chosen by step=reservation:"
    )
    assert "  order-fulfilment: 6" in out and "dry run: nothing done" in err


def test_a_batch_without_a_terminal_needs_yes(
    api: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _, err = run(capsys, "pause", "--status", "running", "--reason", "deploy",
                       "--tracker", api, "--token", "platform")  # fmt: skip
    assert code == 2 and "12 instance(s) would be acted on: pass --yes to run" in err


def test_refusals_and_mistakes_have_their_exit_codes(
    api: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "list", "--tracker", api, "--token", "wrong")
    assert code == 1 and "pass --token" in err and "(HTTP 401)" in err
    code, _, err = run(capsys, "pause", "--reason", "r", "--tracker", api, "--token", "platform")
    assert code == 2 and "or pass --all for every instance" in err
    code, _, err = run(capsys, "pause", "c-1", "--status", "running", "--reason", "r",
                       "--tracker", api, "--token", "platform")  # fmt: skip
    assert code == 2 and "not both" in err
    code, _, err = run(capsys, "list", "--attr", "customer_id", "--tracker", api)
    assert code == 2 and "write NAME=VALUE" in err
    code, _, err = run(capsys, "show", "nobody", "--tracker", api, "--token", "platform")
    assert code == 1 and "no instance nobody (HTTP 404)" in err


def test_a_tracker_that_does_not_answer_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    away = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(capsys, "list", "--tracker", away)
    assert code == 2 and out == ""
    assert err.strip() == (
        f"choreograph instances: the saga tracker at {away} does not answer (connection "
        "refused); is it running? (--tracker)"
    )


def test_the_filters_are_the_apis() -> None:
    args = build_parser().parse_args(
        [
            "instances",
            "list",
            "--process",
            "p",
            "--at-step",
            "payment",
            "--paused",
            "--attr",
            "total.min=100",
            "--attr",
            "region=EU",
            "--open-incidents",
        ]
    )
    assert query_of(args) == {"process": "p", "step": "payment", "paused": "true",
                              "open_incidents": "true", "attr.total.min": "100",
                              "attr.region": "EU"}  # fmt: skip
