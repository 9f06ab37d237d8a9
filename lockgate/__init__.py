"""lockgate core: pure logic, no mitmproxy, no typer."""
