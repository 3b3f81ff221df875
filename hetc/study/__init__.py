"""hetc.study: questions about plans (sweep, simulation, uncertainty, re-planning)."""
