"""Dialogs that run a job of their own (fetching data, …)."""
