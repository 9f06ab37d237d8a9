"""`lockgate demo` and what it brings along: the command, the bundled notes upstream (also the
tests' and benchmarks' real MCP server) and the headless OAuth browser its --check drives."""

__all__ = ["command", "headless_oauth", "server"]
