"""hetc.hwdb"""
