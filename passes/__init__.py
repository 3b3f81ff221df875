"""hetc.passes"""
