"""The nas dashboard (read-only over a store). ``nas dashboard --db URL`` runs it as:

    streamlit run dashboard/app.py --server.address 127.0.0.1 -- --db URL
"""

import streamlit as st

from dashboard import data

st.set_page_config(page_title="nas dashboard", page_icon=":material/hub:", layout="wide")
pages = st.navigation([
    st.Page("app_pages/experiments.py", title="Experiments", icon=":material/list:", default=True),
    st.Page("app_pages/explorer.py", title="Pareto explorer", icon=":material/scatter_plot:"),
    st.Page("app_pages/arch.py", title="Arch detail", icon=":material/account_tree:"),
    st.Page("app_pages/targets.py", title="Targets", icon=":material/speed:"),
])
data.experiment_picker(data.db_url())  # every page shows the experiment chosen here
pages.run()
