"""hetc.targets.cpu"""
