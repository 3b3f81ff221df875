"""hetc: an ahead-of-time compiler that places AI agent graphs on heterogeneous hardware."""

__version__ = "0.1.0"
