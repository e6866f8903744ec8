"""Under CI=true a test needing a real service fails instead of skipping; locally it skips with a reason."""

from __future__ import annotations

import pytest

from tests.support.services import require_service

_INNER_TESTS = """
import pytest

@pytest.mark.requires_service("postgresql")
def test_needs_database():
    pytest.skip("no postgresql here")

def test_skip_unrelated_to_services():
    pytest.skip("not relevant on this platform")

def test_plain():
    pass
"""


@pytest.fixture
def inner_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A tiny test project using our conftest hooks and marker registration."""
    pytester.makeconftest(
        "from tests.conftest import pytest_collection_modifyitems, pytest_runtest_makereport\n"
    )
    pytester.makeini("[pytest]\nmarkers =\n    requires_service(name): needs a real service\n")
    pytester.makepyfile(test_inner=_INNER_TESTS)
    return pytester


def test_ci_turns_skips_of_service_tests_into_failures(
    inner_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    result = inner_project.runpytest("--strict-markers")
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        ["*test_needs_database needs a real service (postgresql)*no postgresql here*"]
    )


def test_locally_service_tests_skip(inner_project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    inner_project.runpytest("--strict-markers").assert_outcomes(passed=1, skipped=2)


def test_require_service_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    require_service("mosquitto", available=True, reason="unused")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="service 'x' unavailable: gone"):
        require_service("x", available=False, reason="gone")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_service("x", available=False, reason="gone")
