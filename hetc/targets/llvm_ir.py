"""LLVM IR for every kernel kind, built with llvmlite's IR builder; shared by the cpu and cuda targets.

One body per kernel kind. What differs between targets is supplied by `IRGen`:
- address space of the kernel's pointers (0 on the host, 1 = global memory on NVPTX);
- how the outer "for every independent work item" loop is distributed: a plain loop on the CPU, a
  grid-stride loop over the global thread id on the GPU;
- the explicit SIMD width used by the top-k scan (8 x f32 = one AVX2 register on the CPU; 1 on the GPU,
  where each thread is one lane).

Fast-math flags, used only where the result stays within the stated tolerances:
- `reassoc contract` on the accumulations of sums (sum of squares, dot products, sum of exp): this lets
  LLVM vectorise and interleave the reductions; the summation order changes (relative error ~1e-6 for the
  sizes we use), no value is assumed finite. Nothing else gets fast-math flags: logits may hold -inf.
- `contract` in the polynomial exp (allows FMA).
No `nnan`/`ninf`/`afn`: exp is our own polynomial (see `exp_f32`), not a library call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import llvmlite.ir as ir

from . import kernels as K

F32 = ir.FloatType()
F16 = ir.HalfType()
I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()

REDUCE_FLAGS = ("reassoc", "contract")
_ELEM = {"f32": F32, "i32": I32, "u16": I16, "u8": I8, "i64": I64}

# exp(x) = 2^n * p(r), n = round(x / ln 2), r = x - n ln 2 (Cody-Waite split of ln 2 into a part exact in
# f32 and the rest); p = degree-7 Taylor-like polynomial with Cephes expf's minimax coefficients
# (S. L. Moshier, Cephes Math Library, expf.c), relative error < 2e-7 on [-ln2/2, ln2/2].
_LOG2E = 1.44269504088896341
_LN2_HI = 0.693359375
_LN2_LO = -2.12194440e-4
_EXP_POLY = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
             5.0000001201e-1)
_EXP_MIN_X = -87.33654  # ln(FLT_MIN): below this the result is flushed to 0
_EXP_MAX_X = 88.0  # keeps 2^n finite (n <= 127); larger inputs saturate at exp(88) ~ 1.65e38


def c32(v: float) -> ir.Constant:
    return ir.Constant(F32, float(v))


def c64(v: int) -> ir.Constant:
    return ir.Constant(I64, int(v))


def ci32(v: int) -> ir.Constant:
    return ir.Constant(I32, int(v))


class IRGen:
    """Builds the kernels of one module for one target flavour (host or NVPTX)."""

    def __init__(self, module: ir.Module, *, gpu: bool):
        self.module = module
        self.gpu = gpu
        self.addrspace = 1 if gpu else 0
        self.simd = 1 if gpu else 8

    # ---- plumbing -----------------------------------------------------------------------------------

    def intrinsic(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        existing = self.module.globals.get(name)
        if existing is not None:
            return existing
        return ir.Function(self.module, ir.FunctionType(ret, list(args)), name)

    def ptr(self, elem: ir.Type) -> ir.PointerType:
        return elem.as_pointer(self.addrspace)

    def define(self, spec: K.KernelSpec) -> tuple[ir.Function, ir.IRBuilder, dict[str, ir.Value]]:
        arg_types = [self.ptr(_ELEM[a.elem]) if a.is_pointer else _ELEM[a.elem] for a in spec.args]
        fn = ir.Function(self.module, ir.FunctionType(VOID, arg_types), spec.name)
        for arg, desc in zip(fn.args, spec.args, strict=True):
            arg.name = desc.name
            if desc.is_pointer:
                if spec.kind != K.ELEMENTWISE:  # elementwise may run in place (out == a)
                    arg.add_attribute("noalias")
                arg.add_attribute("captures(none)")
        fn.attributes.add("nounwind")
        if self.gpu:
            fn.calling_convention = "ptx_kernel"
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        return fn, b, {a.name: a for a in fn.args}

    def loop(self, b: ir.IRBuilder, start: ir.Value, stop: ir.Value,
             body: Callable[..., Sequence[ir.Value]], carried: Sequence[ir.Value] = (),
             step: ir.Value | int = 1, name: str = "i") -> list[ir.Value]:
        """for (i = start; i < stop; i += step) with loop-carried values; returns their final values."""
        step_v = c64(step) if isinstance(step, int) else step
        pre = b.block
        header = b.append_basic_block(f"{name}.head")
        body_bb = b.append_basic_block(f"{name}.body")
        done = b.append_basic_block(f"{name}.done")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64, name)
        i.add_incoming(start, pre)
        phis = []
        for v in carried:
            p = b.phi(v.type)
            p.add_incoming(v, pre)
            phis.append(p)
        b.cbranch(b.icmp_signed("<", i, stop), body_bb, done)
        b.position_at_end(body_bb)
        new = list(body(i, *phis) or [])
        nxt = b.add(i, step_v, flags=("nsw",))
        i.add_incoming(nxt, b.block)
        for p, v in zip(phis, new, strict=True):
            p.add_incoming(v, b.block)
        b.branch(header)
        b.position_at_end(done)
        return phis

    def parallel_for(self, b: ir.IRBuilder, n: ir.Value, body: Callable[[ir.Value], None]) -> None:
        """Every independent work item 0..n-1: a loop on the host, a grid-stride loop on the GPU."""
        if not self.gpu:
            self.loop(b, c64(0), n, lambda i: body(i), name="item")
            return

        def sreg(reg: str) -> ir.Value:
            return b.zext(b.call(self.intrinsic(f"llvm.nvvm.read.ptx.sreg.{reg}", I32, []), []), I64)

        tid, ctaid, ntid, nctaid = sreg("tid.x"), sreg("ctaid.x"), sreg("ntid.x"), sreg("nctaid.x")
        first = b.add(b.mul(ctaid, ntid), tid)
        self.loop(b, first, n, lambda i: body(i), step=b.mul(nctaid, ntid), name="item")

    def at(self, b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
        return b.gep(base, [index], inbounds=True)

    def load(self, b: ir.IRBuilder, base: ir.Value, index: ir.Value) -> ir.Value:
        return b.load(self.at(b, base, index))

    def store(self, b: ir.IRBuilder, value: ir.Value, base: ir.Value, index: ir.Value) -> None:
        b.store(value, self.at(b, base, index))

    def fmax(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
        return b.select(b.fcmp_ordered(">", x, y), x, y)

    def fmin(self, b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
        return b.select(b.fcmp_ordered("<", x, y), x, y)

    def call1(self, b: ir.IRBuilder, name: str, x: ir.Value) -> ir.Value:
        return b.call(self.intrinsic(f"llvm.{name}.f32", F32, [F32]), [x])

    def exp_f32(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        """exp(x) without a library call, so that loops around it vectorise (see the constants above)."""
        fl = ("contract",)
        xc = self.fmin(b, x, c32(_EXP_MAX_X))
        xc = self.fmax(b, xc, c32(_EXP_MIN_X))
        n = self.call1(b, "roundeven", b.fmul(xc, c32(_LOG2E)))
        r = b.fsub(xc, b.fmul(n, c32(_LN2_HI), flags=fl), flags=fl)
        r = b.fsub(r, b.fmul(n, c32(_LN2_LO), flags=fl), flags=fl)
        p = c32(_EXP_POLY[0])
        for coef in _EXP_POLY[1:]:
            p = b.fadd(b.fmul(p, r, flags=fl), c32(coef), flags=fl)
        p = b.fadd(b.fadd(b.fmul(p, b.fmul(r, r), flags=fl), r, flags=fl), c32(1.0), flags=fl)
        pow2 = b.bitcast(b.shl(b.add(b.fptosi(n, I32), ci32(127)), ci32(23)), F32)
        result = b.fmul(p, pow2)
        return b.select(b.fcmp_ordered("<", x, c32(_EXP_MIN_X)), c32(0.0), result)

    # ---- kernels --------------------------------------------------------------------------------------

    def emit(self, spec: K.KernelSpec) -> ir.Function:
        builders = {
            K.ELEMENTWISE: self._elementwise, K.RMSNORM: self._rmsnorm, K.EMBED_POOL: self._embed_pool,
            K.VECTOR_SEARCH: self._vector_search, K.SAMPLE: self._sample,
            K.KV_QUANTIZE: self._kv_quantize, K.KV_DEQUANTIZE: self._kv_dequantize,
        }
        fn, b, a = self.define(spec)
        builders[spec.kind](spec, b, a)
        b.ret_void()
        return fn

    def _elementwise(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        op = spec.p("op")

        def item(i: ir.Value) -> None:
            x = self.load(b, a["a"], i)
            if op == "add":
                y = b.fadd(x, self.load(b, a["b"], i))
            elif op == "mul":
                y = b.fmul(x, self.load(b, a["b"], i))
            else:  # 0.5 x (1 + tanh(c (x + 0.044715 x^3))), tanh(u) = 1 - 2 / (exp(2u) + 1)
                u = b.fmul(c32(0.7978845608028654), b.fadd(x, b.fmul(c32(0.044715), b.fmul(x, b.fmul(x, x)))))
                e = self.exp_f32(b, b.fmul(u, c32(2.0)))
                t = b.fsub(c32(1.0), b.fdiv(c32(2.0), b.fadd(e, c32(1.0))))
                y = b.fmul(b.fmul(c32(0.5), x), b.fadd(c32(1.0), t))
            self.store(b, y, a["out"], i)

        self.parallel_for(b, a["n"], item)

    def _sum_sq(self, b: ir.IRBuilder, base: ir.Value, offset: ir.Value, n: int) -> ir.Value:
        def body(d, acc):
            v = self.load(b, base, b.add(offset, d))
            return [b.fadd(acc, b.fmul(v, v, flags=REDUCE_FLAGS), flags=REDUCE_FLAGS)]

        return self.loop(b, c64(0), c64(n), body, [c32(0.0)], name="d")[0]

    def _rmsnorm(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        dim = int(spec.p("dim"))

        def row(r: ir.Value) -> None:
            off = b.mul(r, c64(dim))
            ms = b.fmul(self._sum_sq(b, a["x"], off, dim), c32(1.0 / dim))
            inv = b.fdiv(c32(1.0), self.call1(b, "sqrt", b.fadd(ms, c32(float(spec.p("eps"))))))

            def scale(d):
                v = self.load(b, a["x"], b.add(off, d))
                self.store(b, b.fmul(b.fmul(v, inv), self.load(b, a["weight"], d)), a["out"], b.add(off, d))
                return []

            self.loop(b, c64(0), c64(dim), scale, name="d")

        self.parallel_for(b, a["rows"], row)

    def _embed_pool(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        dim = int(spec.p("dim"))
        seq = a["seq"]

        def sequence(bi: ir.Value) -> None:
            out_off = b.mul(bi, c64(dim))
            self.loop(b, c64(0), c64(dim), lambda d: [self.store(b, c32(0.0), a["out"], b.add(out_off, d))][:0],
                      name="z")

            def token(s, count):
                m = self.load(b, a["mask"], b.add(b.mul(bi, seq), s))
                on = b.icmp_signed("!=", m, ci32(0))
                with b.if_then(on):
                    h_off = b.mul(b.add(b.mul(bi, seq), s), c64(dim))

                    def acc(d):
                        o = b.add(out_off, d)
                        self.store(b, b.fadd(self.load(b, a["out"], o), self.load(b, a["hidden"], b.add(h_off, d))),
                                   a["out"], o)
                        return []

                    self.loop(b, c64(0), c64(dim), acc, name="d")
                return [b.add(count, b.zext(on, I64))]

            count = self.loop(b, c64(0), seq, token, [c64(0)], name="s")[0]
            count_f = b.sitofp(b.select(b.icmp_signed(">", count, c64(0)), count, c64(1)), F32)
            inv_count = b.fdiv(c32(1.0), count_f)
            norm = b.fmul(self.call1(b, "sqrt", self._sum_sq(b, a["out"], out_off, dim)), inv_count)
            scale = b.fdiv(inv_count, self.fmax(b, norm, c32(1e-12)))

            def finish(d):
                o = b.add(out_off, d)
                self.store(b, b.fmul(self.load(b, a["out"], o), scale), a["out"], o)
                return []

            self.loop(b, c64(0), c64(dim), finish, name="d")

        self.parallel_for(b, a["batch"], sequence)

    def _topk_insert(self, b: ir.IRBuilder, vals: ir.Value, idxs: ir.Value, k: int,
                     value: ir.Value, index: ir.Value) -> None:
        """Insert (value, index) into the descending list vals[0..k) if it beats vals[k-1]. Equal values keep
        the earlier entry first, so ties resolve to the lower index (entries arrive in index order)."""
        last = c64(k - 1)
        with b.if_then(b.fcmp_ordered(">", value, self.load(b, vals, last)), likely=False):
            head = b.append_basic_block("ins.head")
            shift = b.append_basic_block("ins.shift")
            place = b.append_basic_block("ins.place")
            pre = b.block
            b.branch(head)
            b.position_at_end(head)
            pos = b.phi(I64, "pos")
            pos.add_incoming(last, pre)
            prev = b.sub(pos, c64(1))
            at_top = b.icmp_signed("<=", pos, c64(0))
            # short-circuit: only read vals[pos-1] when pos > 0
            guard = b.append_basic_block("ins.cmp")
            b.cbranch(at_top, place, guard)
            b.position_at_end(guard)
            prev_val = self.load(b, vals, prev)
            b.cbranch(b.fcmp_ordered("<", prev_val, value), shift, place)
            b.position_at_end(shift)
            self.store(b, prev_val, vals, pos)
            self.store(b, self.load(b, idxs, prev), idxs, pos)
            pos.add_incoming(prev, shift)
            b.branch(head)
            b.position_at_end(place)
            self.store(b, value, vals, pos)
            self.store(b, index, idxs, pos)

    def _fill(self, b: ir.IRBuilder, base: ir.Value, offset: ir.Value, n: int, value: ir.Value) -> None:
        self.loop(b, c64(0), c64(n), lambda j: [self.store(b, value, base, b.add(offset, j))][:0], name="f")

    def _vector_search(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        dim, k = int(spec.p("dim")), int(spec.p("top_k"))
        cosine = spec.p("metric") == "cosine"
        mat, qs, out_i, out_s = a["matrix"], a["queries"], a["out_index"], a["out_score"]
        n_q = a["n_queries"]

        def dot(x_off: ir.Value, q_off: ir.Value) -> ir.Value:
            def body(d, acc):
                x = self.load(b, mat, b.add(x_off, d))
                q = self.load(b, qs, b.add(q_off, d))
                return [b.fadd(acc, b.fmul(x, q, flags=REDUCE_FLAGS), flags=REDUCE_FLAGS)]

            return self.loop(b, c64(0), c64(dim), body, [c32(0.0)], name="d")[0]

        def scan(q_first: ir.Value, q_stop: ir.Value) -> None:
            """Queries [q_first, q_stop): rows outer so each matrix row is read from memory once."""
            def init(q):
                self._fill(b, out_s, b.mul(q, c64(k)), k, c32(float("-inf")))
                self._fill(b, out_i, b.mul(q, c64(k)), k, ci32(-1))
                return []

            self.loop(b, q_first, q_stop, init, name="qi")

            def row(r):
                x_off = b.mul(r, c64(dim))
                inv_norm = c32(1.0)
                if cosine:  # rank by dot / |x|; the 1 / |q| factor is applied to the k winners at the end
                    norm = self.call1(b, "sqrt", self._sum_sq(b, mat, x_off, dim))
                    inv_norm = b.select(b.fcmp_ordered(">", norm, c32(0.0)), b.fdiv(c32(1.0), norm), c32(0.0))

                def query(q):
                    s = b.fmul(dot(x_off, b.mul(q, c64(dim))), inv_norm)
                    q_off = b.mul(q, c64(k))
                    self._topk_insert(b, self.at(b, out_s, q_off), self.at(b, out_i, q_off), k, s,
                                      b.trunc(r, I32))
                    return []

                self.loop(b, q_first, q_stop, query, name="q")
                return []

            self.loop(b, c64(0), a["n_rows"], row, name="r")
            if cosine:
                def finish(q):
                    qn = self.call1(b, "sqrt", self._sum_sq(b, qs, b.mul(q, c64(dim)), dim))
                    inv = b.select(b.fcmp_ordered(">", qn, c32(0.0)), b.fdiv(c32(1.0), qn), c32(0.0))

                    def fix(j):
                        o = b.add(b.mul(q, c64(k)), j)
                        s = self.load(b, out_s, o)
                        present = b.icmp_signed(">=", self.load(b, out_i, o), ci32(0))
                        self.store(b, b.select(present, b.fmul(s, inv), s), out_s, o)
                        return []

                    self.loop(b, c64(0), c64(k), fix, name="j")
                    return []

                self.loop(b, q_first, q_stop, finish, name="qf")

        if self.gpu:  # one thread per query
            self.parallel_for(b, n_q, lambda q: scan(q, b.add(q, c64(1))))
        else:
            scan(c64(0), n_q)

    def _sample(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        vocab, k = int(spec.p("vocab")), int(spec.p("top_k"))
        entry = b.block
        # top-k buffers and cumulative masses: on the stack (host) / in local memory (GPU), k <= MAX_TOP_K
        with b.goto_block(entry):
            vals = b.alloca(F32, size=c64(k), name="topv")
            idxs = b.alloca(I32, size=c64(k), name="topi")
            cum = b.alloca(F32, size=c64(k), name="cum")
        inv_t = b.fdiv(c32(1.0), a["temperature"])
        top_p = a["top_p"]

        def row(r: ir.Value) -> None:
            off = b.mul(r, c64(vocab))
            self._fill_local(b, vals, k, c32(float("-inf")))
            self._fill_local(b, idxs, k, ci32(-1))
            self._topk_scan(b, a["logits"], off, vocab, vals, idxs, k)
            m = b.fmul(b.load(b.gep(vals, [c64(0)])), inv_t)

            def total_body(v, acc):
                x = b.fsub(b.fmul(self.load(b, a["logits"], b.add(off, v)), inv_t), m)
                return [b.fadd(acc, self.exp_f32(b, x), flags=REDUCE_FLAGS)]

            total = self.loop(b, c64(0), c64(vocab), total_body, [c32(0.0)], name="v")[0]

            def cum_body(j, acc):
                q = self.exp_f32(b, b.fsub(b.fmul(b.load(b.gep(vals, [j])), inv_t), m))
                acc2 = b.fadd(acc, q)
                b.store(acc2, b.gep(cum, [j]))
                return [acc2]

            mass = self.loop(b, c64(0), c64(k), cum_body, [c32(0.0)], name="j")[0]
            keep = self._first_index(b, cum, k, ">=", b.fmul(top_p, mass), c64(k - 1))
            target = b.fmul(self.load(b, a["uniform"], r), b.load(b.gep(cum, [keep])))
            pick = self._first_index(b, cum, k, ">", target, keep, limit=b.add(keep, c64(1)))
            # recompute q_pick instead of cum[pick] - cum[pick-1] (no cancellation)
            q_pick = self.exp_f32(b, b.fsub(b.fmul(b.load(b.gep(vals, [pick])), inv_t), m))
            self.store(b, b.load(b.gep(idxs, [pick])), a["out_token"], r)
            self.store(b, b.fdiv(q_pick, total), a["out_prob"], r)

        self.parallel_for(b, a["rows"], row)

    def _fill_local(self, b: ir.IRBuilder, base: ir.Value, n: int, value: ir.Value) -> None:
        self.loop(b, c64(0), c64(n), lambda j: [b.store(value, b.gep(base, [j]))][:0], name="f")

    def _first_index(self, b: ir.IRBuilder, arr: ir.Value, n: int, op: str, bound: ir.Value,
                     default: ir.Value, limit: ir.Value | None = None) -> ir.Value:
        """min j < limit with arr[j] <op> bound, else default (arr is a local buffer)."""
        stop = c64(n) if limit is None else limit

        def body(j, found):
            hit = b.and_(b.fcmp_ordered(op, b.load(b.gep(arr, [j])), bound),
                         b.icmp_signed("<", found, c64(0)))
            return [b.select(hit, j, found)]

        found = self.loop(b, c64(0), stop, body, [c64(-1)], name="j")[0]
        return b.select(b.icmp_signed("<", found, c64(0)), default, found)

    def _topk_scan(self, b: ir.IRBuilder, base: ir.Value, off: ir.Value, n: int, vals: ir.Value,
                   idxs: ir.Value, k: int) -> None:
        """Top-k of base[off : off + n] into the local buffers. The host version compares SIMD chunks of
        `simd` values against the current k-th best and only inserts lane by lane when some lane beats it."""
        width = self.simd
        chunks = n // width if width > 1 else 0

        def insert(v):
            x = self.load(b, base, b.add(off, v))
            self._topk_insert(b, vals, idxs, k, x, b.trunc(v, I32))

        if chunks:
            vec_t = ir.VectorType(F32, width)

            def chunk(c):
                start = b.mul(c, c64(width))
                p = b.bitcast(self.at(b, base, b.add(off, start)), vec_t.as_pointer(self.addrspace))
                vec = b.load(p, align=4)
                kth = b.load(b.gep(vals, [c64(k - 1)]))
                splat = b.insert_element(ir.Constant(vec_t, ir.Undefined), kth, ci32(0))
                splat = b.shuffle_vector(splat, ir.Constant(vec_t, ir.Undefined),
                                         ir.Constant(ir.VectorType(I32, width), [0] * width))
                mask = b.bitcast(b.fcmp_ordered(">", vec, splat), ir.IntType(width))
                with b.if_then(b.icmp_unsigned("!=", mask, ir.Constant(ir.IntType(width), 0)), likely=False):
                    self.loop(b, start, b.add(start, c64(width)), lambda v: [insert(v)][:0], name="lane")
                return []

            self.loop(b, c64(0), c64(chunks), chunk, name="c")
        self.loop(b, c64(chunks * width), c64(n), lambda v: [insert(v)][:0], name="t")

    def _kv_groups(self, spec: K.KernelSpec, b: ir.IRBuilder, n_tokens: ir.Value):
        bt = int(spec.p("block_tokens"))
        n_blocks = b.sdiv(b.add(n_tokens, c64(bt - 1)), c64(bt))
        groups = b.mul(b.mul(c64(2 * int(spec.p("n_layers"))), n_blocks), c64(int(spec.p("n_kv_heads"))))
        return n_blocks, groups

    def _kv_group_walk(self, spec: K.KernelSpec, b: ir.IRBuilder, g: ir.Value, n_blocks: ir.Value,
                       n_tokens: ir.Value, body: Callable[[ir.Value], None]) -> None:
        """Calls body(element offset) for every element of group g = ((layer*2 + kv) * n_blocks + block)
        * n_kv_heads + head, i.e. block_tokens tokens x head_dim values, token-major."""
        heads, hd, bt = int(spec.p("n_kv_heads")), int(spec.p("head_dim")), int(spec.p("block_tokens"))
        h = b.srem(g, c64(heads))
        rest = b.sdiv(g, c64(heads))
        blk = b.srem(rest, n_blocks)
        lk = b.sdiv(rest, n_blocks)
        t0 = b.mul(blk, c64(bt))
        t1 = b.add(t0, c64(bt))
        t1 = b.select(b.icmp_signed("<", t1, n_tokens), t1, n_tokens)

        def token(t):
            base = b.mul(b.add(b.mul(b.add(b.mul(lk, n_tokens), t), c64(heads)), h), c64(hd))
            self.loop(b, c64(0), c64(hd), lambda d: [body(b.add(base, d))][:0], name="d")
            return []

        self.loop(b, t0, t1, token, name="t")

    def _kv_quantize(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        qdtype = spec.p("qdtype")
        n_tokens = a["n_tokens"]
        n_blocks, groups = self._kv_groups(spec, b, n_tokens)
        slot = b.alloca(I16, name="amax")

        def group(g):
            # |x| of fp16 compares like its bits with the sign cleared (finite values): an integer max
            b.store(ir.Constant(I16, 0), slot)

            def amax(o):
                bits = b.and_(self.load(b, a["kv"], o), ir.Constant(I16, 0x7FFF))
                cur = b.load(slot)
                b.store(b.select(b.icmp_unsigned(">", bits, cur), bits, cur), slot)

            self._kv_group_walk(spec, b, g, n_blocks, n_tokens, amax)
            absmax = b.fpext(b.bitcast(b.load(slot), F16), F32)
            scale = b.fdiv(absmax, c32(K.QMAX[qdtype]))
            inv = b.select(b.fcmp_ordered(">", scale, c32(0.0)), b.fdiv(c32(1.0), scale), c32(0.0))
            self.store(b, scale, a["scales"], g)

            def quant(o):
                y = b.fmul(b.fpext(b.bitcast(self.load(b, a["kv"], o), F16), F32), inv)
                code = self._encode_int8(b, y) if qdtype == "int8" else self._encode_e4m3(b, y)
                self.store(b, code, a["codes"], o)

            self._kv_group_walk(spec, b, g, n_blocks, n_tokens, quant)

        self.parallel_for(b, groups, group)

    def _encode_int8(self, b: ir.IRBuilder, y: ir.Value) -> ir.Value:
        r = self.call1(b, "roundeven", y)
        r = self.fmax(b, self.fmin(b, r, c32(127.0)), c32(-127.0))
        return b.trunc(b.fptosi(r, I32), I8)

    def _encode_e4m3(self, b: ir.IRBuilder, y: ir.Value) -> ir.Value:
        """f32 -> fp8 e4m3fn code, round to nearest even, saturating at 448 (bit manipulation only)."""
        bits = b.bitcast(y, I32)
        sign = b.and_(b.lshr(bits, ci32(24)), ci32(0x80))
        mag = self.fmin(b, self.call1(b, "fabs", y), c32(448.0))
        # subnormals (|y| < 2^-6): code = round(|y| * 2^9); 8 rounds up into the first normal, as it should
        sub = b.fptosi(self.call1(b, "roundeven", b.fmul(mag, c32(512.0))), I32)
        mbits = b.bitcast(mag, I32)
        rounded = b.add(b.add(mbits, ci32(0x7FFFF)), b.and_(b.lshr(mbits, ci32(20)), ci32(1)))
        normal = b.sub(b.lshr(rounded, ci32(20)), ci32((127 - 7) << 3))  # rebias exponent 127 -> 7
        code = b.select(b.fcmp_ordered("<", mag, c32(2.0**-6)), sub, normal)
        code = b.or_(code, b.select(b.icmp_signed("!=", code, ci32(0)), sign, ci32(0)))
        return b.trunc(code, I8)

    def _decode_e4m3(self, b: ir.IRBuilder, c: ir.Value) -> ir.Value:
        ci = b.zext(c, I32)
        mag = b.and_(ci, ci32(0x7F))
        sub = b.fmul(b.uitofp(b.and_(mag, ci32(7)), F32), c32(2.0**-9))
        normal = b.bitcast(b.shl(b.add(mag, ci32((127 - 7) << 3)), ci32(20)), F32)
        v = b.select(b.icmp_unsigned("<", mag, ci32(8)), sub, normal)
        return b.select(b.icmp_unsigned(">=", ci, ci32(0x80)), b.fneg(v), v)

    def _kv_dequantize(self, spec: K.KernelSpec, b: ir.IRBuilder, a: dict) -> None:
        qdtype = spec.p("qdtype")
        n_tokens = a["n_tokens"]
        n_blocks, groups = self._kv_groups(spec, b, n_tokens)

        def group(g):
            scale = self.load(b, a["scales"], g)

            def dequant(o):
                c = self.load(b, a["codes"], o)
                v = b.sitofp(c, F32) if qdtype == "int8" else self._decode_e4m3(b, c)
                self.store(b, b.bitcast(b.fptrunc(b.fmul(v, scale), F16), I16), a["kv"], o)

            self._kv_group_walk(spec, b, g, n_blocks, n_tokens, dequant)

        self.parallel_for(b, groups, group)


def build_module(kernels: Sequence[K.KernelSpec], *, triple: str, data_layout: str, gpu: bool,
                 name: str) -> ir.Module:
    module = ir.Module(name=name)
    module.triple = triple
    module.data_layout = data_layout
    gen = IRGen(module, gpu=gpu)
    for spec in kernels:
        gen.emit(spec)
    return module
