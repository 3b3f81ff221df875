"""Cost model: hand-computed FLOPs/bytes, KV sizes, the paper's egress example, roofline transitions."""

from __future__ import annotations

import pytest

from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model import costmodel as cm
from hetc.model.models import PRESETS

L8, L70, L405, MIXTRAL = (PRESETS[k] for k in ("llama-3-8b", "llama-3-70b", "llama-3.1-405b", "mixtral-8x7b"))


@pytest.fixture(scope="module")
def db():
    return load_hwdb()


def test_parameter_and_kv_arithmetic():
    # 8B: 32 * (2*4096^2 + 2*4096*1024 + 3*4096*14336) + 2*128256*4096
    assert L8.params() == 8_029_995_008
    assert L70.params() == 70_552_387_584
    assert L70.kv_bytes_per_token(2) == 327_680  # 2 * 80 * 8 * 128 * 2
    assert L8.kv_bytes_per_token(2) == 131_072  # 2 * 32 * 8 * 128 * 2


def test_prefill_flops_and_bytes_llama3_8b(db):
    # 2 * P * 512 = 8,222,714,888,192; causal attention 2 * 32 * 32 * 128 * 512^2 = 68,719,476,736
    assert cm.prefill_flops(L8, 1, 512) == 8_291_434_364_928
    est = cm.prefill(L8, db.get("h100"), "fp16", 1, 1, 1, 512)
    assert est.flops == 8_291_434_364_928
    # fp16 weights 16,059,990,016 B read once + KV written 512 * 131,072 B
    assert est.bytes == 16_059_990_016 + 67_108_864
    assert est.bound == "compute" and est.fits and est.devices == 1
    # two operators: GEMMs at the large-GEMM rate (989.4 TFLOPS * 0.6 * the calibrated fp16 multiplier)
    # scaled for 512 rows, and attention at its own lower rate
    gemm_rate = 989.4e12 * 0.6 * cm.TUNING.gemm_16
    assert cm.compute_rate(db.get("h100"), "fp16")[0] == pytest.approx(gemm_rate)
    shape = 512 / (512 + cm.TUNING.gemm_half_m)
    attention = 68_719_476_736 / (gemm_rate * cm.TUNING.attention_compute)
    assert est.compute_s == pytest.approx(8_222_714_888_192 / (gemm_rate * shape) + attention)


def test_prefill_flops_llama3_70b_batch(db):
    # 4 prompts of 2048: 2 * P * 8192 + 4 * (2 * 80 * 64 * 128 * 2048^2)
    expected = 2 * 70_552_387_584 * 8192 + 4 * 2 * 80 * 64 * 128 * 2048 ** 2
    assert cm.prefill_flops(L70, 4, 2048) == expected == 1_177_920_550_731_776
    est = cm.prefill(L70, db.get("h100"), "fp8", 4, 1, 4, 2048)
    assert est.flops == expected and est.comm_s > 0 and est.devices == 4


def test_decode_flops_and_bytes(db):
    # 70B, batch 1 at context 1024: 2 * P + 4 * 80 * 64 * 128 * 1024
    assert cm.decode_step_flops(L70, 1, 1024) == 141_104_775_168 + 2_684_354_560
    # bytes: fp16 weights once + 1024 tokens of KV at 327,680 B
    assert cm.decode_step_bytes(L70, "fp16", "fp16", 1, 1024) == 141_104_775_168 + 1024 * 327_680
    # 8B, batch 8 at context 600 (input 400 + output 400 / 2), fp8 weights and fp16 KV
    est = cm.decode(L8, db.get("h100"), "fp8", "fp16", 1, 1, 8, 400, 400)
    assert est.context_tokens == 600
    assert est.bytes_per_step == 8_029_995_008 + 8 * 600 * 131_072
    assert est.flops_per_step == 8 * (2 * 8_029_995_008 + 4 * 32 * 32 * 128 * 600)
    # the linear step model is exact at the batch it was computed for
    assert est.step_s_base + est.step_s_per_seq * 8 == pytest.approx(est.tbt_s)
    assert est.tokens_per_s == pytest.approx(8 / est.tbt_s)
    assert est.requests_per_s == pytest.approx(est.tokens_per_s / 400)


def test_decode_bound_moves_from_memory_to_compute_as_batch_grows(db):
    h100 = db.get("h100")
    bounds = [cm.decode(L8, h100, "fp16", "fp16", 1, 1, b, 128, 2).bound for b in (1, 2, 8, 32, 128, 512, 2048)]
    assert bounds[0] == "memory" and bounds[-1] == "compute"
    switch = [i for i in range(1, len(bounds)) if bounds[i] != bounds[i - 1]]
    assert len(switch) == 1  # one transition, at the ridge point
    # batch raises throughput, and TBT, monotonically
    tbts = [cm.decode(L8, h100, "fp16", "fp16", 1, 1, b, 128, 2).tbt_s for b in (1, 8, 64, 512)]
    assert tbts == sorted(tbts)
    # long contexts keep decode memory-bound even at large batch (the KV reads dominate)
    assert cm.decode(L8, h100, "fp16", "fp16", 1, 1, 512, 8000, 100).bound == "memory"


def test_tensor_parallel_cuts_latency_and_adds_allreduce(db):
    h100, a40 = db.get("h100"), db.get("a40")
    one = cm.decode(L70, h100, "fp8", "fp8", 1, 1, 1, 512, 512)
    four = cm.decode(L70, h100, "fp8", "fp8", 4, 1, 1, 512, 512)
    assert one.comm_s == 0 and four.comm_s > 0 and four.tbt_s < one.tbt_s
    # two all-reduces per layer; small messages: the fixed cost and 2 log2(p) hops of the link latency dominate
    expected = 2 * 80 * (cm.TUNING.allreduce_s + 2 * 2 * 2e-6
                         + 2 * 3 / 4 * 8192 * 2 / (450e9 * cm.TUNING.allreduce_bw))
    assert four.comm_s == pytest.approx(expected)
    # the same degree over PCIe (A40) costs more communication
    assert cm.decode(L8, a40, "fp16", "fp16", 4, 1, 64, 512, 512).comm_s > \
        cm.decode(L8, h100, "fp16", "fp16", 4, 1, 64, 512, 512).comm_s
    with pytest.raises(HetcError, match="tp=16 exceeds"):
        cm.decode(L70, h100, "fp8", "fp8", 16, 1, 1, 512, 512)
    with pytest.raises(HetcError, match="exceeds"):
        cm.prefill(L8, db.get("xeon-8480"), "bf16", 2, 1, 1, 128)


def test_pipeline_adds_handoffs_and_capacity(db):
    h100 = db.get("h100")
    flat = cm.prefill(L70, h100, "fp16", 2, 1, 1, 1024)
    piped = cm.prefill(L70, h100, "fp16", 2, 2, 1, 1024)
    assert piped.latency_s > flat.latency_s  # hand-offs, no speed-up for one batch
    assert piped.memory_bytes < flat.memory_bytes and piped.devices == 4


def test_memory_capacity_paged_attention_and_min_tp(db):
    assert cm.paged_tokens(17) == 32 and cm.paged_tokens(16) == 16
    h100, b200, l4 = db.get("h100"), db.get("b200"), db.get("l4")
    # 70B fp16 weights 141 GB: two 80 GiB H100s (vLLM: 90 % less 1 GiB, 76.2 GB usable each), one 180 GB
    # B200, eight 24 GB L4s
    assert cm.min_tp(L70, h100, "fp16", input_tokens=512, output_tokens=512) == 2
    assert cm.min_tp(L70, b200, "fp16", input_tokens=512, output_tokens=512) == 1
    assert cm.min_tp(L70, l4, "fp16", input_tokens=512, output_tokens=512) == 8
    assert cm.min_tp(L405, l4, "fp16", input_tokens=512, output_tokens=512) is None
    assert cm.usable_memory_bytes(h100) == pytest.approx(80 * 2 ** 30 * 0.9 - 2 ** 30)
    est = cm.decode(L70, h100, "fp16", "fp16", 2, 1, 1, 512, 512)
    weights = 141_104_775_168 / 2
    kv = 768 * 327_680 / 2  # continuous batching: sequences hold input + output / 2 on average
    assert est.memory_bytes == pytest.approx(weights + kv + 1 * (4 * 8192 + 2 * 28672 / 2) * 2)


def test_max_batch_meets_tbt_and_memory(db):
    h100 = db.get("h100")
    best = cm.max_batch(L70, h100, "fp8", 2, 1, 512, 4096, kv_precision="fp8", tbt_s=0.020)
    assert best > 1
    at = cm.decode(L70, h100, "fp8", "fp8", 2, 1, best, 512, 4096)
    over = cm.decode(L70, h100, "fp8", "fp8", 2, 1, best + 1, 512, 4096)
    assert at.tbt_s <= 0.020 and at.fits
    assert over.tbt_s > 0.020 or not over.fits
    by_memory = cm.max_batch(L70, h100, "fp8", 2, 1, 512, 4096, kv_precision="fp8")
    assert by_memory >= best and cm.decode(L70, h100, "fp8", "fp8", 2, 1, by_memory, 512, 4096).fits
    assert not cm.decode(L70, h100, "fp8", "fp8", 2, 1, by_memory + 1, 512, 4096).fits
    assert cm.max_batch(L70, h100, "fp8", 2, 1, 512, 4096, tbt_s=0.001) == 0
    prefill_batch = cm.max_batch(L8, h100, "fp8", 1, 1, 4096, 1, ttft_s=0.25, phase="prefill")
    assert cm.prefill(L8, h100, "fp8", 1, 1, prefill_batch, 4096).latency_s <= 0.25
    assert cm.prefill(L8, h100, "fp8", 1, 1, prefill_batch + 1, 4096).latency_s > 0.25


def test_moe_active_params_and_distinct_experts(db):
    assert cm.distinct_experts(MIXTRAL, 1) == pytest.approx(2.0)
    assert cm.distinct_experts(MIXTRAL, 2) == pytest.approx(8 * (1 - (6 / 8) ** 2))  # 3.5
    assert cm.distinct_experts(MIXTRAL, 256) == pytest.approx(8.0)
    h100 = db.get("h100")
    small = cm.decode(MIXTRAL, h100, "fp16", "fp16", 1, 1, 1, 128, 16)
    large = cm.decode(MIXTRAL, h100, "fp16", "fp16", 1, 1, 64, 128, 16)
    expert = 3 * 4096 * 14336
    shared = MIXTRAL.params() - 32 * 8 * expert
    assert small.bytes_per_step == pytest.approx((shared + 32 * 2 * expert) * 2 + 136 * MIXTRAL.kv_bytes_per_token(2))
    assert large.bytes_per_step > small.bytes_per_step
    assert small.flops_per_step == pytest.approx(2 * MIXTRAL.active_params() + 4 * 32 * 32 * 128 * 136)
    # all experts are held in memory
    assert small.memory_bytes > MIXTRAL.params() * 2


def test_kv_transfer_and_paper_egress_example(db):
    size = cm.kv_bytes(L70, "fp16", 32 * 1024)
    assert size == 327_680 * 32_768 == 10_737_418_240  # "about 10.7 GB"
    assert cm.kv_egress_gbps(L70, "fp16", 32 * 1024, ttft_s=0.250) == pytest.approx(343.6, abs=0.1)
    assert cm.kv_ingress_gbps(L70, "fp16", 32 * 1024, tbt_s=0.020, n_decode_devices=8) == pytest.approx(536.9, abs=0.1)
    h100, b200 = db.get("h100"), db.get("b200")
    same = cm.kv_transfer_s(L70, "fp16", 32 * 1024, h100, h100, same_chassis=True)
    assert same == pytest.approx(size / 450e9 + 2e-6)
    across = cm.kv_transfer_s(L70, "fp16", 32 * 1024, h100, b200, same_chassis=False)
    assert across == pytest.approx(size / 50e9 + 5e-6)
    # different link families never share a scale-up fabric
    assert cm.kv_transfer_s(L70, "fp16", 1024, h100, b200, same_chassis=True) == pytest.approx(
        cm.kv_bytes(L70, "fp16", 1024) / 50e9 + 5e-6)


def test_precision_fallback_and_errors(db):
    a100 = db.get("a100")
    est = cm.prefill(L8, a100, "fp8", 1, 1, 1, 512)
    assert est.compute_precision == "bf16"  # no FP8 tensor cores on Ampere: weight-only, 16-bit GEMMs
    assert cm.decode(L8, db.get("gaudi3"), "fp16", None, 1, 1, 1, 128, 8).compute_precision == "bf16"
    with pytest.raises(HetcError, match="unknown precision"):
        cm.prefill(L8, a100, "fp12", 1, 1, 1, 512)
    with pytest.raises(HetcError, match="must be >= 1"):
        cm.decode(L8, a100, "fp16", None, 1, 1, 0, 128, 8)


def test_non_llm_operators(db):
    cpu, h100 = db.get("xeon-6980p"), db.get("h100")
    bge = PRESETS["bge-large-en-v1.5"]
    emb = cm.encoder_model(bge, cpu, "bf16", tokens=256, batch=8)
    assert emb.flops == pytest.approx(8 * (2 * bge.params() * 256 + 4 * 24 * 16 * 64 * 256 ** 2))
    assert emb.latency_s > 0 and emb.fits
    whisper = PRESETS["whisper-large-v3"]
    six = cm.speech_to_text(whisper, h100, "fp16", audio_seconds=6, output_tokens=40)
    forty = cm.speech_to_text(whisper, h100, "fp16", audio_seconds=40, output_tokens=40)
    assert 0 < six.latency_s < forty.latency_s  # 40 s needs two 30 s windows
    voice = cm.tts(PRESETS["kokoro-82m"], cpu, "bf16", audio_seconds=5)
    assert voice.flops == pytest.approx(2 * 82e6 * 5 * 80)
    flat = cm.vector_search(1_000_000, 768, 4, cpu, "flat")
    assert flat.bytes == 3_072_000_000 and flat.bound == "memory"
    assert flat.latency_s == pytest.approx(3.072e9 / cm.memory_rate(cpu) + cm.OP_OVERHEAD_S)
    hnsw = cm.vector_search(1_000_000, 768, 4, cpu, "hnsw", ef=64)
    assert hnsw.latency_s < flat.latency_s / 10
    assert cm.cpu_compute(12.5) == 0.0125
    assert cm.tool_latency_s(300, 2, 16, cpu) == pytest.approx(0.3 + 18e3 / 12.5e9 + 20e-6)
    with pytest.raises(HetcError, match="unknown vector index"):
        cm.vector_search(10, 8, 4, cpu, "ivf")


def test_serve_combines_phases(db):
    est = cm.serve(L70, db.get("h100"), "fp8", "fp8", 2, 1, 64, 512, 4096)
    assert est.ttft_s < est.prefill.latency_s  # one request vs the whole batch
    assert est.tokens_per_s == pytest.approx(64 * 4096 / (est.prefill.latency_s + 4096 * est.tbt_s))
    assert est.tokens_per_s < est.decode.tokens_per_s


def test_70b_fp8_on_one_h100_leaves_room_for_dozens_of_sequences(db):
    # TensorRT-LLM keeps 90 % of the memory the FP8 weights (70.6 GB) leave on an 80 GiB H100 for KV: at
    # 128 in / 2048 out (FP8 KV, 160 KiB per token) dozens of sequences fit; the old model fitted none
    h100 = db.get("h100")
    best = cm.max_batch(L70, h100, "fp8", 1, 1, 128, 2048, "fp8", engine="trtllm")
    assert 40 <= best <= 80  # (85.9e9 - 1 GiB - 70.6e9) * 0.9 / (1,152 tokens * 160 KiB) = 68, less activations
    assert cm.max_batch(L70, h100, "fp8", 1, 1, 128, 2048, "fp8", engine="vllm") < best


def test_engine_profiles_change_overhead_caps_and_memory(db):
    h100 = db.get("h100")
    trt = cm.decode(L8, h100, "fp8", "fp8", 1, 1, 1, 128, 128, engine="trtllm")
    gaudi_style = cm.decode(L8, h100, "fp8", "fp8", 1, 1, 1, 128, 128, engine="vllm-gaudi")
    assert gaudi_style.tbt_s - trt.tbt_s == pytest.approx((1500e-6 - 300e-6) * cm.TUNING.overhead_scale)
    # vLLM schedules at most 256 sequences (--max-num-seqs), TensorRT-LLM up to 2048
    assert cm.max_batch(L8, h100, "fp8", 1, 1, 128, 128, "fp8") == 256
    assert cm.max_batch(L8, h100, "fp8", 1, 1, 128, 128, "fp8", engine="trtllm") > 256
    with pytest.raises(HetcError, match="unknown engine 'tgi'"):
        cm.decode(L8, h100, "fp8", "fp8", 1, 1, 1, 128, 128, engine="tgi")


def test_vllm_v0_pays_host_time_per_sequence(db):
    # vLLM 0.6's Python scheduler, sampler and detokeniser cost per sequence and step: the step grows by
    # seq_overhead_s for every sequence added, where vLLM V1 (all per-step) does not
    h100 = db.get("h100")
    per_seq = cm.engine_profile("vllm-v0").seq_overhead_s * cm.TUNING.seq_overhead_scale
    v0 = [cm.decode(L405, h100, "fp8", "bf16", 8, 1, b, 128, 2048, engine="vllm-v0").tbt_s for b in (16, 64)]
    v1 = [cm.decode(L405, h100, "fp8", "bf16", 8, 1, b, 128, 2048, engine="vllm").tbt_s for b in (16, 64)]
    assert (v0[1] - v0[0]) - (v1[1] - v1[0]) == pytest.approx(48 * per_seq)
    assert cm.engine_profile("vllm").seq_overhead_s == 0


def test_allreduce_moves_at_a_share_of_the_link(db):
    # large messages (prefill of 8K tokens at TP 8) pay the bandwidth term at allreduce_bw of the link
    h100 = db.get("h100")
    full = cm.prefill(L70, h100, "fp8", 8, 1, 1, 8192, tuning=cm.Tuning(allreduce_bw=1.0)).comm_s
    half = cm.prefill(L70, h100, "fp8", 8, 1, 1, 8192, tuning=cm.Tuning(allreduce_bw=0.5)).comm_s
    message = 8192 * 8192 * 2
    assert half - full == pytest.approx(2 * 80 * 2 * 7 / 8 * message / 450e9, rel=1e-6)


def test_decode_attention_reads_kv_below_gemm_bandwidth(db):
    # a long-context step: the KV read runs at attention_bw of the weight-read bandwidth
    h100 = db.get("h100")
    tuning = cm.Tuning(attention_bw=0.5)
    slow = cm.decode(L8, h100, "fp16", "fp16", 1, 1, 64, 8000, 2, tuning=tuning)
    fast = cm.decode(L8, h100, "fp16", "fp16", 1, 1, 64, 8000, 2, tuning=cm.Tuning(attention_bw=1.0))
    kv_s = 64 * 8001 * 131_072 / cm.memory_rate(h100, tuning)
    assert slow.tbt_s - fast.tbt_s == pytest.approx(kv_s, rel=1e-6)


def test_small_m_gemm_efficiency_rises_with_rows():
    assert cm.gemm_shape_factor(1) < cm.gemm_shape_factor(64) < cm.gemm_shape_factor(4096) < 1
    assert cm.gemm_shape_factor(cm.TUNING.gemm_half_m) == pytest.approx(0.5)


def test_default_engine_is_what_the_deployment_launches(db):
    gaudi, h100 = db.get("gaudi3"), db.get("h100")
    assert cm.decode(L8, gaudi, "bf16", "bf16", 1, 1, 4, 128, 128).tbt_s == \
        cm.decode(L8, gaudi, "bf16", "bf16", 1, 1, 4, 128, 128, engine="vllm-gaudi").tbt_s
    assert cm.decode(L8, h100, "bf16", "bf16", 1, 1, 4, 128, 128).tbt_s == \
        cm.decode(L8, h100, "bf16", "bf16", 1, 1, 4, 128, 128, engine="vllm").tbt_s
