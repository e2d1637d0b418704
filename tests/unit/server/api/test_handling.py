from server.api.handling import IGNORED_HEADER, ignored_fields_header


def test_ignored_fields_are_logged_once_and_named_in_an_ascii_header(caplog):
    logged: set[str] = set()
    header = ignored_fields_header(["tools", "naïve\n"], logged)
    assert header == {IGNORED_HEADER: "tools, na\\u00efve\\n"}
    header[IGNORED_HEADER].encode("ascii")  # a valid header value
    assert logged == {"tools", "naïve\n"} and "tools" in caplog.text
    caplog.clear()
    assert ignored_fields_header(["tools"], logged) == {IGNORED_HEADER: "tools"}
    assert "tools" not in caplog.text  # said once
    assert ignored_fields_header([], logged) == {}
