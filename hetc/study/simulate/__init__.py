"""Discrete-event simulation of a run plan under load: does the placed plan meet its SLA?

The model (docs/plan.md, "Simulation semantics", is the reference):
- Requests arrive by a Poisson process (or from a trace file) at the plan's source stages.
- Every stage has `replicas` servers and one FIFO queue. Service models (stage["service"]["type"]):
  none (zero time), fixed (median latency_ms, lognormal when latency_p99_ms is given, `concurrency` calls
  per replica), batch (a free replica takes up to max_batch waiting items: ms_base + ms_per_item * items),
  continuous (decode: sequences join and leave a running batch at step boundaries; a step takes
  step_ms_base + step_ms_per_seq * batch and gives every sequence one token), transfer (a KV move:
  latency_ms + bytes / bandwidth_gbs on `concurrency` channels per replica).
- Edges delay a token by predicted_ms. Branches (probability < 1) and loops (back edges with
  max_iterations) are drawn per request and per visit. A loop's results leave it once, when it ends.
- Per request: end-to-end latency, TTFT (entry into a prefill stage -> first token of the decode that
  follows) and TBT (mean time between tokens of one decode), each the worst over the request's LLM calls.

Same plan, same options, same seed: the same numbers (numpy Generators spawned from one SeedSequence;
ties in the event heap are broken by a sequence number).

The package, one job per module: trace.py reads a trace file; stages.py builds the simulated stages and the
loop structure from a plan; engine.py is the event loop and each request's state machine; summary.py turns a
finished run into the latency/SLA report; run.py checks the options, draws the arrivals and runs (simulate,
sweep_rate).
"""

from hetc.study.simulate.run import EVENTS_PER_S, MAX_EVENTS, planned_rate, simulate, sweep_rate
from hetc.study.simulate.stages import stage_graph
from hetc.study.simulate.summary import analytic_capacity, latency_targets
from hetc.study.simulate.trace import MAX_TRACE_BYTES, Trace, load_trace

__all__ = ["EVENTS_PER_S", "MAX_EVENTS", "MAX_TRACE_BYTES", "Trace", "analytic_capacity", "latency_targets",
           "load_trace", "planned_rate", "simulate", "stage_graph", "sweep_rate"]
