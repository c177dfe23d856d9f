"""In CI (CI set) a server test that cannot run fails instead of skipping (issue 9): the browser test's own check,
and the tests/server conftest hook that turns any skip there into a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()


def test_skip_probe() -> None:
    """Skips only when the test below asks it to; otherwise there is nothing to check."""
    if os.environ.get("RAG_TEST_SKIP_PROBE"):
        pytest.skip("the probe was asked to skip")


def _run_probe(ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"RAG_TEST_SKIP_PROBE": "1"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{HERE}::test_skip_probe"],
                          cwd=HERE.parents[2], env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_skip_is_a_failure_in_ci_only() -> None:
    in_ci = _run_probe("true")
    assert in_ci.returncode == 1, in_ci.stdout[-2000:]
    assert "skipped in CI, where every server test must run: the probe was asked to skip" in in_ci.stdout
    for ci in (None, "false"):
        outside = _run_probe(ci)
        assert outside.returncode == 0 and "1 skipped" in outside.stdout, outside.stdout[-2000:]


def test_missing_browser_fails_in_ci(monkeypatch) -> None:  # noqa: ANN001
    import test_server_page as page

    monkeypatch.setattr(page, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="browser test cannot run in CI: missing /nonexistent/chromium"):
        page._browser_or_skip()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="missing /nonexistent/chromium"):
        page._browser_or_skip()
