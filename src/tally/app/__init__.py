"""Use cases, one per module, each reading gather → decide → apply."""
