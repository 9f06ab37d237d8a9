"""lockgate addons."""
