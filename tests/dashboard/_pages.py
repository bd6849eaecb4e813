"""Running one dashboard page in Streamlit's test harness against a store."""

from __future__ import annotations

from tests.conftest import REPO

APP = REPO / "dashboard"


def run_page(page: str, url: str, monkeypatch, timeout: float = 60, **session):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("NAS_DB_URL", url)
    at = AppTest.from_file(str(APP / "app_pages" / f"{page}.py"), default_timeout=timeout)
    for key, value in session.items():
        at.session_state[key] = value
    return at.run()
