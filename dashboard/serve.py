"""Start Streamlit's server for the dashboard with the heavy modules the pages need imported
first, so that the first page a user opens does not wait for them (about half a second on
2 cores). ``nas dashboard`` runs ``python -m dashboard.serve run dashboard/app.py ...``; the
arguments are Streamlit's own."""

import sys

import numpy  # noqa: F401
import pandas  # noqa: F401
import plotly.graph_objects  # noqa: F401
import sqlalchemy  # noqa: F401
from streamlit.web.cli import main

import nas.pareto  # noqa: F401
import nas.store  # noqa: F401

if __name__ == "__main__":
    sys.exit(main())
