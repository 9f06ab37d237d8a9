"""Which text a body is, by its Content-Type's `charset`: the gateway reads UTF-8 only.

Why it exists: the pipeline decodes every JSON body and event stream as UTF-8, while some
peers decode one as its label says (Express's `json()` takes any `utf-*`, UTF-7 included,
in which `+ACI-` is a quote). A body labelled otherwise is two texts, so it is refused, and
the label is read the loosest way any parser might: every `;`-separated parameter named
`charset` (any case, spaces around `=`, quotes, RFC 2231's `charset*`) in every value.
"""

from __future__ import annotations

from collections.abc import Iterable

_UTF8 = frozenset({"utf-8", "utf8"})


def foreign_charset(values: Iterable[str]) -> str | None:
    """The first charset other than UTF-8 that these Content-Type values name (cut to 40
    characters), or None when they name none or only UTF-8."""
    for value in values:
        for param in value.split(";"):
            key, sep, val = param.partition("=")
            if sep and key.strip().lower().rstrip("*") == "charset":
                val = val.strip().strip('"').strip().lower()
                if val not in _UTF8:
                    return val[:40]
    return None
