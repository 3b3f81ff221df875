"""hetc.model: what a deployment costs and how fast it runs (cost model, TCO, engines, KV paths, model configs)."""
