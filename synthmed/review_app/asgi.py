"""The review app as an ASGI app: ``app.py`` served behind the Host allow-list (``synthmed app`` runs this file).

``streamlit run`` finds ``app`` below and serves it with its usual server (uvicorn), flags and secrets.
"""
import streamlit as st
from starlette.middleware import Middleware

from synthmed.review_app.hosts import HostAllowList
from synthmed.review_app.launch import app_path

app = st.App(app_path(), middleware=[Middleware(HostAllowList)])
