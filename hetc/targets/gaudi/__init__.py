"""hetc.targets.gaudi"""
