"""The one-line addon for the bare-mitmdump baseline: stream SSE responses, buffer the rest."""


def responseheaders(flow):  # type: ignore[no-untyped-def]
    flow.response.stream = flow.response.headers.get("content-type", "").startswith(
        "text/event-stream"
    )
