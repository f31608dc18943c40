"""The dashboard's home page loads and says what the tool is not."""

from streamlit.testing.v1 import AppTest


def test_home_page_loads_with_disclaimer():
    at = AppTest.from_file("app.py", default_timeout=60).run()
    assert not at.exception
    assert any("not a diagnostic device" in w.value for w in at.warning)
