"""Streamlit dashboard over the store (read-only)."""
