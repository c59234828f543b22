"""HTTP API (FastAPI). Pydantic models live only here."""
