"""lockgate profiles."""
