"""hetc.dialects"""
