"""lockgate/net/charset.py: a body labelled with any charset but UTF-8 is named, however spelled."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lockgate.net.charset import foreign_charset


@pytest.mark.parametrize(
    ("values", "named"),
    [
        (["application/json"], None),
        (["application/json; charset=utf-8"], None),
        (['application/json; charset="UTF-8"'], None),
        (["application/json;charset=utf8"], None),
        (["application/json; charset=utf-7"], "utf-7"),
        (["application/json; Charset = UTF-7"], "utf-7"),
        (["application/json; charset*=utf-7''"], "utf-7''"),
        (["application/json; charset="], ""),
        (["application/json; charset=utf-8; charset=utf-16"], "utf-16"),
        (["application/json", "text/plain; charset=latin1"], "latin1"),
        (["application/json, text/plain; charset=latin1"], "latin1"),
        (["application/json; boundary=charset"], None),
    ],
)
def test_every_charset_parameter_in_every_value_counts(
    values: list[str], named: str | None
) -> None:
    assert foreign_charset(values) == named


_PARAM_VALUE = st.sampled_from(["utf-8", "UTF-8", "utf8", "utf-7", "latin1", "utf-16", "x"])


@given(
    key=st.sampled_from(["charset", "Charset", "CHARSET", " charset", "charset "]),
    value=_PARAM_VALUE,
    quoted=st.booleans(),
    before=st.lists(st.sampled_from(["q=1", "boundary=x", "v=2"]), max_size=2),
)
@example(key="charset", value="utf-7", quoted=True, before=[])
def test_what_another_parser_reads_as_a_charset_other_than_utf8_is_refused(
    key: str, value: str, quoted: bool, before: list[str]
) -> None:
    """Python's email parser as the other reading: whenever it finds a charset other than
    UTF-8 in the header, `foreign_charset` names one too."""
    header = "; ".join(["application/json", *before, f"{key}={f'"{value}"' if quoted else value}"])
    msg = EmailMessage()
    msg["Content-Type"] = header
    theirs = msg.get_content_charset()
    if theirs is not None and theirs not in ("utf-8", "utf8"):
        assert foreign_charset([header]) is not None
    if foreign_charset([header]) is None:
        assert theirs in (None, "utf-8", "utf8")
