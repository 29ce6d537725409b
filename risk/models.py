"""risk models — see design.md §2 for what this app owns."""
