"""hetc.targets"""
