"""hetc.targets.cuda"""
