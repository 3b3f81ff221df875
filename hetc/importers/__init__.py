"""Importers: hetc specs from agent graphs written in frameworks (LangGraph: hetc.importers.langgraph)."""
