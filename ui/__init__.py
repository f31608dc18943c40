"""Streamlit helpers shared by the dashboard pages (the only package that imports Streamlit)."""
