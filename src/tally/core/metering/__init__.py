"""Metering: usage events (`events`), meters and their aggregation. Pure: see README.md."""
