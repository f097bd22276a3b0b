"""16-lane vector blocks for the Numba kernels, written as numba intrinsics (LLVM vector IR).

numba cannot tell LLVM that two arrays do not overlap, so a loop such as
``z[j] += c * W[i, j]`` over 16 output units is either left scalar or vectorised behind
runtime alias checks with a 32-lane body (the 16-unit case then runs the scalar tail). These
intrinsics emit the vector code directly, as the C kernels (csrc/fnn_impl.h) do with GCC vector
types: one block is up to 16 lanes (``t`` < 16: masked loads/stores, so a row never reads or
writes past its end), accumulators stay in registers across the loop over rows, and every
load/store happens in program order (no aliasing assumptions). float64 blocks are 16 lanes too
(two zmm registers). The intrinsics are expanded inline into the calling kernel.

Under NUMBA_DISABLE_JIT the same names are plain Python/NumPy functions.
"""

from __future__ import annotations

import numpy as np

from .config import JIT_DISABLED

VW = 16   # lanes per block
# slots of the kernels' scalar array ``sc`` used by blk_update (see kernels.SC_*)
_LR, _MU, _B1, _B2, _OMB1, _OMB2, _EPS, _WD, _STEP, _BC2 = 6, 7, 8, 9, 10, 11, 12, 13, 14, 15

if JIT_DISABLED:

    def blk_mvs(z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc):
        """z[zo:zo+t] = (acc ? z : 0) + alpha * sum_k c[co+idx[k]] * M[mo+idx[k]*ldm : +t]."""
        M, c = M.reshape(-1), c.reshape(-1)
        s = np.zeros(t, dtype=z.dtype)
        for k in range(cnt):
            i = int(idx[k])
            s += c[co + i] * M[mo + i * ldm:mo + i * ldm + t]
        s *= alpha
        if acc:
            s += z[zo:zo + t]
        z[zo:zo + t] = s

    def blk_mvd(z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc):
        """z[zo:zo+t] = (acc ? z : 0) + alpha * sum_k c[co+k*cs] * M[mo+k*ldm : +t]."""
        M, c = M.reshape(-1), c.reshape(-1)
        s = np.zeros(t, dtype=z.dtype)
        for k in range(cnt):
            s += c[co + k * cs] * M[mo + k * ldm:mo + k * ldm + t]
        s *= alpha
        if acc:
            s += z[zo:zo + t]
        z[zo:zo + t] = s

    def blk_axpy(z, zo, t, c, d, do):
        """z[zo:zo+t] += c * d[do:do+t]."""
        z[zo:zo + t] += c * d.reshape(-1)[do:do + t]

    def blk_dot(a, ao, d, do, t):
        """sum_j a[ao+j] * d[do+j] for j < t."""
        return a.dtype.type(np.dot(a[ao:ao + t], d[do:do + t]))

    def blk_axpy_rows(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """W[wo+i*ldw : +t] += (alpha * x[xo+i]) * d[do:do+t] for i = idx[k], k0 <= k < k1."""
        W, x, d = W.reshape(-1), x.reshape(-1), d.reshape(-1)
        for k in range(k0, k1):
            i = int(idx[k])
            W[wo + i * ldw:wo + i * ldw + t] += (alpha * x[xo + i]) * d[do:do + t]

    def blk_update(kind, p, g, m, v, off, t, sc, decay):
        """One optimiser step on p[off:off+t] with gradient g[off:off+t]; g is cleared."""
        sl = slice(off, off + t)
        lr, wd, mu = sc[_LR], sc[_WD], sc[_MU]
        gg = g[sl] + wd * p[sl] if decay else g[sl].copy()
        if kind == 0:
            p[sl] -= lr * gg
        elif kind == 1:
            m[sl] = mu * m[sl] + gg
            p[sl] -= lr * m[sl]
        elif kind == 2:
            m[sl] = mu * m[sl] + gg
            p[sl] -= lr * (gg + mu * m[sl])
        else:
            m[sl] = sc[_B1] * m[sl] + sc[_OMB1] * gg
            v[sl] = sc[_B2] * v[sl] + sc[_OMB2] * gg * gg
            p[sl] -= sc[_STEP] * m[sl] / (np.sqrt(v[sl]) / sc[_BC2] + sc[_EPS])
        g[sl] = 0

    def blk_sigmoid(z, zo, t, b, bo):
        """z[zo:zo+t] = 1 / (1 + exp(-(z + b[bo:bo+t])))."""
        v = z[zo:zo + t] + b[bo:bo + t]
        one = z.dtype.type(1)
        with np.errstate(over="ignore"):
            z[zo:zo + t] = one / (one + np.exp(-v))

    def blk_softmax(z, zo, t, b, bo):
        """z[zo:zo+t] = softmax(z + b[bo:bo+t]) (t <= 16)."""
        v = z[zo:zo + t] + b[bo:bo + t]
        e = np.exp(v - np.max(v))
        z[zo:zo + t] = e / np.sum(e)

    def blk_sgd(p, g, m, v, off, t, sc, decay):
        blk_update(0, p, g, m, v, off, t, sc, decay)

    def blk_momentum(p, g, m, v, off, t, sc, decay):
        blk_update(1, p, g, m, v, off, t, sc, decay)

    def blk_nesterov(p, g, m, v, off, t, sc, decay):
        blk_update(2, p, g, m, v, off, t, sc, decay)

    def blk_adam(p, g, m, v, off, t, sc, decay):
        blk_update(3, p, g, m, v, off, t, sc, decay)

    def blk_rank1_rows(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """W[wo+k*ldw : +t] += (alpha * x[xo+k]) * d[do:do+t] for k0 <= k < k1."""
        W, x, d = W.reshape(-1), x.reshape(-1), d.reshape(-1)
        for k in range(k0, k1):
            W[wo + k * ldw:wo + k * ldw + t] += (alpha * x[xo + k]) * d[do:do + t]

    def prefetch(a, off):
        """Hint: the cache line holding a.flat[off] will be read soon (no-op here)."""

    def blk_nz(x, xo, t, idx, k, base):
        """Append base + j for the j < t with x[xo+j] != 0 to idx[k:]; returns the new k."""
        for j in range(t):
            if x.flat[xo + j] != 0:
                idx[k] = base + j
                k += 1
        return k

    blk_mvs2 = blk_mvs4 = blk_mvs
    blk_mvd2 = blk_mvd4 = blk_mvd
    blk_axpy_rows2 = blk_axpy_rows4 = blk_axpy_rows

else:
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    _I32 = ir.IntType(32)
    _I64 = ir.IntType(64)

    def _vty(dty):
        return ir.VectorType(dty, VW)

    def _data(context, builder, arrty, arr):
        return cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data

    def _splat(builder, x, vty):
        v = builder.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(_I32, 0))
        return builder.shuffle_vector(v, ir.Constant(vty, ir.Undefined),
                                      ir.Constant(ir.VectorType(_I32, VW), [0] * VW))

    _FULL = [False]   # set while _dual emits the all-lanes copy of a block's code

    def _mask(builder, t):
        """Lanes [0, t) of a block; inside the full copy of _dual, the constant all-true mask
        (LLVM then emits plain loads and stores: a masked store that a later load overlaps
        cannot be forwarded and stalls, e.g. a weight row updated and read by the next sample)."""
        if _FULL[0]:
            return ir.Constant(ir.VectorType(ir.IntType(1), VW), [1] * VW)
        lanes = ir.Constant(ir.VectorType(_I64, VW), list(range(VW)))
        return builder.icmp_signed("<", lanes, _splat(builder, t, ir.VectorType(_I64, VW)))

    def _block_masks(builder, t, nblk):
        """Masks of nblk adjacent blocks covering lanes [0, t), where 16 (nblk - 1) < t: all
        blocks but the last are full (plain loads/stores), the last is masked."""
        full = ir.Constant(ir.VectorType(ir.IntType(1), VW), [1] * VW)
        last = _mask(builder, builder.sub(t, ir.Constant(_I64, VW * (nblk - 1))))
        return [full] * (nblk - 1) + [last]

    def _dual(codegen, t_index, nlanes):
        """Emit codegen twice: for t == nlanes (every block full: plain vector loads/stores)
        and for any other t (masked)."""
        def wrapped(context, builder, sig, args):
            t = _as_i64(context, builder, sig.args[t_index], args[t_index])
            full = builder.icmp_signed("==", t, ir.Constant(_I64, nlanes))
            with builder.if_else(full, likely=True) as (then, other):
                with then:
                    _FULL[0] = True
                    try:
                        r1 = codegen(context, builder, sig, args)
                    finally:
                        _FULL[0] = False
                    b1 = builder.block
                with other:
                    r2 = codegen(context, builder, sig, args)
                    b2 = builder.block
            if sig.return_type == types.void:
                return context.get_dummy_value()
            phi = builder.phi(r1.type)
            phi.add_incoming(r1, b1)
            phi.add_incoming(r2, b2)
            return phi
        return wrapped

    def _sfx(dty):
        return "v16f32" if isinstance(dty, ir.FloatType) else "v16f64"

    def _mload(builder, base, off, mask, dty):
        vty = _vty(dty)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty.as_pointer(), _I32, mask.type, vty]),
            f"llvm.masked.load.{_sfx(dty)}.p0")
        p = builder.bitcast(builder.gep(base, [off]), vty.as_pointer())
        return builder.call(fn, [p, ir.Constant(_I32, 4), mask, ir.Constant(vty, None)])

    def _mstore(builder, val, base, off, mask, dty):
        vty = _vty(dty)
        fn = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [vty, vty.as_pointer(), _I32, mask.type]),
            f"llvm.masked.store.{_sfx(dty)}.p0")
        p = builder.bitcast(builder.gep(base, [off]), vty.as_pointer())
        builder.call(fn, [val, p, ir.Constant(_I32, 4), mask])

    def _fma(builder, a, b, c):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(a.type, [a.type, a.type, a.type]),
            f"llvm.fma.{_sfx(a.type.element)}")
        return builder.call(fn, [a, b, c])

    def _hsum(builder, v):
        n = VW
        while n > 1:
            h = n // 2
            lo = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h), list(range(h))))
            hi = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(_I32, h),
                                                          list(range(h, n))))
            v = builder.fadd(lo, hi)
            n = h
        return builder.extract_element(v, ir.Constant(_I32, 0))

    def _as_i64(context, builder, ty, val):
        return context.cast(builder, val, ty, types.int64)

    def _mv_codegen(sparse, nblk=1):
        """The shared body of blk_mvs / blk_mvd: 4 accumulators over rows, then a tail loop.

        nblk > 1: the wide variant, nblk adjacent 16-lane blocks per row (lanes [0, t) of
        [0, 16*nblk)), one accumulator per block, one row per iteration.
        """

        def codegen(context, builder, sig, args):
            if sparse:
                (z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc) = args
                tys = sig.args
                idx_ty = tys[8]
                cs = None
            else:
                (z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc) = args
                tys = sig.args
            zty, Mty, cty = tys[0], tys[3], tys[6]
            dty = context.get_value_type(zty.dtype)
            vty = _vty(dty)
            i64 = lambda k, v: _as_i64(context, builder, tys[k], v)  # noqa: E731
            zo, t, mo, ldm, co, cnt = i64(1, zo), i64(2, t), i64(4, mo), i64(5, ldm), \
                i64(7, co), i64(9, cnt)
            if not sparse:
                cs = i64(8, cs)
            alpha = context.cast(builder, alpha, tys[10], zty.dtype)
            accf = context.cast(builder, acc, tys[11], types.boolean)
            zp = _data(context, builder, zty, z)
            Mp = _data(context, builder, Mty, M)
            cp = _data(context, builder, cty, c)
            if sparse:
                ip = _data(context, builder, idx_ty, idx)
                iel = idx_ty.dtype
            mask = _mask(builder, t)
            zero = ir.Constant(vty, None)
            if nblk > 1:
                masks = _block_masks(builder, t, nblk)

            def row_coef(k):
                if sparse:
                    i = builder.load(builder.gep(ip, [k]))
                    i = context.cast(builder, i, iel, types.int64)
                    coef = builder.load(builder.gep(cp, [builder.add(co, i)]))
                    return i, coef
                coef = builder.load(builder.gep(cp, [builder.add(co, builder.mul(k, cs))]))
                return k, coef

            def term(k):
                i, coef = row_coef(k)
                w = _mload(builder, Mp, builder.add(mo, builder.mul(i, ldm)), mask, dty)
                return w, _splat(builder, coef, vty)

            if nblk > 1:
                # two rows per iteration (two accumulator sets), then a one-row tail
                def wide_step(kk, acc_in):
                    i, coef = row_coef(kk)
                    cv = _splat(builder, coef, vty)
                    base = builder.add(mo, builder.mul(i, ldm))
                    outs = []
                    for q in range(nblk):
                        w = _mload(builder, Mp, builder.add(base, ir.Constant(_I64, VW * q)),
                                   masks[q], dty)
                        outs.append(_fma(builder, cv, w, acc_in[q]))
                    return outs

                n2 = builder.and_(cnt, ir.Constant(_I64, ~1))
                pre = builder.block
                head = builder.append_basic_block("mvw.h")
                body = builder.append_basic_block("mvw.b")
                tail = builder.append_basic_block("mvw.t")
                tbody = builder.append_basic_block("mvw.tb")
                done = builder.append_basic_block("mvw.done")
                builder.branch(head)
                builder.position_at_end(head)
                k = builder.phi(_I64)
                a = [builder.phi(vty) for _ in range(2 * nblk)]
                k.add_incoming(ir.Constant(_I64, 0), pre)
                for q in range(2 * nblk):
                    a[q].add_incoming(zero, pre)
                builder.cbranch(builder.icmp_signed("<", k, n2), body, tail)
                builder.position_at_end(body)
                o1 = wide_step(k, a[:nblk])
                o2 = wide_step(builder.add(k, ir.Constant(_I64, 1)), a[nblk:])
                for q, val in enumerate(o1 + o2):
                    a[q].add_incoming(val, body)
                k.add_incoming(builder.add(k, ir.Constant(_I64, 2)), body)
                builder.branch(head)
                builder.position_at_end(tail)
                sums = [builder.fadd(a[q], a[nblk + q]) for q in range(nblk)]
                builder.cbranch(builder.icmp_signed("<", k, cnt), tbody, done)
                builder.position_at_end(tbody)
                last = wide_step(k, sums)
                builder.branch(done)
                builder.position_at_end(done)
                a = []
                for q in range(nblk):
                    ph = builder.phi(vty)
                    ph.add_incoming(sums[q], tail)
                    ph.add_incoming(last[q], tbody)
                    a.append(ph)
                av = _splat(builder, alpha, vty)
                for q in range(nblk):
                    zq = builder.add(zo, ir.Constant(_I64, VW * q))
                    sq = builder.fmul(a[q], av)
                    old = _mload(builder, zp, zq, masks[q], dty)
                    sq = builder.select(accf, builder.fadd(sq, old), sq)
                    _mstore(builder, sq, zp, zq, masks[q], dty)
                return context.get_dummy_value()
            # main loop: 4 rows per iteration, 4 independent accumulators
            n4 = builder.and_(cnt, ir.Constant(_I64, ~3))
            pre = builder.block
            head4 = builder.append_basic_block("mv.h4")
            body4 = builder.append_basic_block("mv.b4")
            head1 = builder.append_basic_block("mv.h1")
            body1 = builder.append_basic_block("mv.b1")
            done = builder.append_basic_block("mv.done")
            builder.branch(head4)
            builder.position_at_end(head4)
            k = builder.phi(_I64)
            a = [builder.phi(vty) for _ in range(4)]
            k.add_incoming(ir.Constant(_I64, 0), pre)
            for q in range(4):
                a[q].add_incoming(zero, pre)
            builder.cbranch(builder.icmp_signed("<", k, n4), body4, head1)
            builder.position_at_end(body4)
            new = []
            for q in range(4):
                w, cv = term(builder.add(k, ir.Constant(_I64, q)))
                new.append(_fma(builder, cv, w, a[q]))
            k4 = builder.add(k, ir.Constant(_I64, 4))
            k.add_incoming(k4, body4)
            for q in range(4):
                a[q].add_incoming(new[q], body4)
            builder.branch(head4)
            # tail loop: one row per iteration into accumulator 0
            builder.position_at_end(head1)
            k1 = builder.phi(_I64)
            a0 = builder.phi(vty)
            k1.add_incoming(k, head4)
            a0.add_incoming(a[0], head4)
            builder.cbranch(builder.icmp_signed("<", k1, cnt), body1, done)
            builder.position_at_end(body1)
            w, cv = term(k1)
            a0n = _fma(builder, cv, w, a0)
            k1.add_incoming(builder.add(k1, ir.Constant(_I64, 1)), body1)
            a0.add_incoming(a0n, body1)
            builder.branch(head1)
            builder.position_at_end(done)
            s = builder.fadd(builder.fadd(a0, a[1]), builder.fadd(a[2], a[3]))
            s = builder.fmul(s, _splat(builder, alpha, vty))
            old = _mload(builder, zp, zo, mask, dty)
            s = builder.select(accf, builder.fadd(s, old), s)
            _mstore(builder, s, zp, zo, mask, dty)
            return context.get_dummy_value()

        return codegen

    @intrinsic
    def blk_mvs(typingctx, z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc):
        """z[zo:zo+t] = (acc ? z : 0) + alpha * sum_k c[co+idx[k]] * M[mo+idx[k]*ldm : +t]."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(True), 2, VW)

    @intrinsic
    def blk_mvd(typingctx, z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc):
        """z[zo:zo+t] = (acc ? z : 0) + alpha * sum_k c[co+k*cs] * M[mo+k*ldm : +t]."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(False), 2, VW)

    @intrinsic
    def blk_axpy(typingctx, z, zo, t, c, d, do):
        """z[zo:zo+t] += c * d[do:do+t]."""
        sig = types.void(z, zo, t, c, d, do)

        def codegen(context, builder, sig, args):
            z, zo, t, c, d, do = args
            tys = sig.args
            dty = context.get_value_type(tys[0].dtype)
            zo = _as_i64(context, builder, tys[1], zo)
            t = _as_i64(context, builder, tys[2], t)
            do = _as_i64(context, builder, tys[5], do)
            c = context.cast(builder, c, tys[3], tys[0].dtype)
            zp = _data(context, builder, tys[0], z)
            dp = _data(context, builder, tys[4], d)
            mask = _mask(builder, t)
            dv = _mload(builder, dp, do, mask, dty)
            zv = _mload(builder, zp, zo, mask, dty)
            zv = _fma(builder, _splat(builder, c, _vty(dty)), dv, zv)
            _mstore(builder, zv, zp, zo, mask, dty)
            return context.get_dummy_value()

        return sig, _dual(codegen, 2, VW)

    @intrinsic
    def blk_dot(typingctx, a, ao, d, do, t):
        """sum_j a[ao+j] * d[do+j] for j < t (t <= 16)."""
        sig = a.dtype(a, ao, d, do, t)

        def codegen(context, builder, sig, args):
            a, ao, d, do, t = args
            tys = sig.args
            dty = context.get_value_type(tys[0].dtype)
            ao = _as_i64(context, builder, tys[1], ao)
            do = _as_i64(context, builder, tys[3], do)
            t = _as_i64(context, builder, tys[4], t)
            mask = _mask(builder, t)
            av = _mload(builder, _data(context, builder, tys[0], a), ao, mask, dty)
            dv = _mload(builder, _data(context, builder, tys[2], d), do, mask, dty)
            return _hsum(builder, builder.fmul(av, dv))

        return sig, _dual(codegen, 4, VW)

    @intrinsic
    def blk_nz(typingctx, x, xo, t, idx, k, base):
        """Append base + j for the j < t with x[xo+j] != 0 to idx[k:]; returns the new k.

        One vector compare and a compress-store of the lane numbers (AVX-512 vpcompressd);
        idx needs 16 slots of room after k. NaN counts as nonzero.
        """
        sig = types.int64(x, xo, t, idx, k, base)

        def codegen(context, builder, sig, args):
            x, xo, t, idx, k, base = args
            tys = sig.args
            dty = context.get_value_type(tys[0].dtype)
            xo = _as_i64(context, builder, tys[1], xo)
            t = _as_i64(context, builder, tys[2], t)
            k = _as_i64(context, builder, tys[4], k)
            base = _as_i64(context, builder, tys[5], base)
            mask = _mask(builder, t)
            xv = _mload(builder, _data(context, builder, tys[0], x), xo, mask, dty)
            nz = builder.and_(builder.fcmp_unordered("!=", xv, ir.Constant(_vty(dty), None)),
                              mask)
            ity = context.get_value_type(tys[3].dtype)
            ivty = ir.VectorType(ity, VW)
            lanes = builder.add(_splat(builder, builder.trunc(base, ity) if ity.width < 64
                                       else base, ivty),
                                ir.Constant(ivty, list(range(VW))))
            # compress in a register, then one plain store (a compress-store to memory is
            # microcoded and slow on AMD Zen 4/5)
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ivty, [ivty, nz.type, ivty]),
                f"llvm.experimental.vector.compress.v16i{ity.width}")
            packed = builder.call(fn, [lanes, nz, ir.Constant(ivty, ir.Undefined)])
            ip = builder.gep(_data(context, builder, tys[3], idx), [k])
            st = builder.store(packed, builder.bitcast(ip, ivty.as_pointer()))
            st.align = 4
            bits = builder.bitcast(nz, ir.IntType(VW))
            pop = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.IntType(VW), [ir.IntType(VW)]),
                f"llvm.ctpop.i{VW}")
            cnt = builder.zext(builder.call(pop, [bits]), _I64)
            return builder.add(k, cnt)

        return sig, _dual(codegen, 2, VW)


    @intrinsic
    def prefetch(typingctx, a, off):
        """Hint: the cache line holding a.flat[off] will be read soon (llvm.prefetch)."""
        sig = types.void(a, off)

        def codegen(context, builder, sig, args):
            a, off = args
            tys = sig.args
            off = _as_i64(context, builder, tys[1], off)
            p = builder.gep(_data(context, builder, tys[0], a), [off])
            i8p = ir.IntType(8).as_pointer()
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]),
                "llvm.prefetch.p0")
            builder.call(fn, [builder.bitcast(p, i8p), ir.Constant(_I32, 0),
                              ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
            return context.get_dummy_value()

        return sig, codegen


    def _axpy_rows_codegen(nblk, dense=False):
        """dense: rows k0..k1 themselves (idx unused), coefficient x[xo + k]."""
        def codegen(context, builder, sig, args):
            W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do = args
            tys = sig.args
            fty = tys[0].dtype
            dty = context.get_value_type(fty)
            vty = _vty(dty)
            wo, ldw, t = (_as_i64(context, builder, tys[q], v) for q, v in
                          ((1, wo), (2, ldw), (3, t)))
            xo, k0, k1, do = (_as_i64(context, builder, tys[q], v) for q, v in
                              ((5, xo), (7, k0), (8, k1), (11, do)))
            alpha = context.cast(builder, alpha, tys[9], fty)
            Wp = _data(context, builder, tys[0], W)
            xp = _data(context, builder, tys[4], x)
            ip = _data(context, builder, tys[6], idx)
            dp = _data(context, builder, tys[10], d)
            masks = _block_masks(builder, t, nblk)
            dvs = [_mload(builder, dp, builder.add(do, ir.Constant(_I64, VW * q)), masks[q],
                          dty) for q in range(nblk)]
            pre = builder.block
            head = builder.append_basic_block("ax.h")
            body = builder.append_basic_block("ax.b")
            done = builder.append_basic_block("ax.done")
            builder.branch(head)
            builder.position_at_end(head)
            k = builder.phi(_I64)
            k.add_incoming(k0, pre)
            builder.cbranch(builder.icmp_signed("<", k, k1), body, done)
            builder.position_at_end(body)
            if dense:
                i = k
            else:
                i = context.cast(builder, builder.load(builder.gep(ip, [k])), tys[6].dtype,
                                 types.int64)
            c = builder.fmul(alpha, builder.load(builder.gep(xp, [builder.add(xo, i)])))
            cv = _splat(builder, c, vty)
            base = builder.add(wo, builder.mul(i, ldw))
            for q in range(nblk):
                off = builder.add(base, ir.Constant(_I64, VW * q))
                w = _mload(builder, Wp, off, masks[q], dty)
                _mstore(builder, _fma(builder, cv, dvs[q], w), Wp, off, masks[q], dty)
            k.add_incoming(builder.add(k, ir.Constant(_I64, 1)), body)
            builder.branch(head)
            builder.position_at_end(done)
            return context.get_dummy_value()

        return codegen

    @intrinsic
    def blk_axpy_rows(typingctx, W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """W[wo+i*ldw : +t] += (alpha * x[xo+i]) * d[do:do+t] for i = idx[k], k0 <= k < k1.

        The sparse rank-1 update of the input layer (its plain SGD step, or its gradient
        accumulation): d and the lane mask stay in registers across the rows. W must not
        overlap d (rows of W are updated one after the other, in k order). t <= 16.
        """
        sig = types.void(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
        return sig, _dual(_axpy_rows_codegen(1), 3, 1 * VW)

    @intrinsic
    def blk_axpy_rows4(typingctx, W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """blk_axpy_rows over 49..64 lanes (four 16-lane blocks per row)."""
        sig = types.void(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
        return sig, _dual(_axpy_rows_codegen(4), 3, 4 * VW)


    def _update_codegen(kind):
        def codegen(context, builder, sig, args):
            p, g, m, v, off, t, sc, decay = args
            tys = sig.args
            fty = tys[0].dtype
            dty = context.get_value_type(fty)
            vty = _vty(dty)
            off = _as_i64(context, builder, tys[4], off)
            t = _as_i64(context, builder, tys[5], t)
            dec = context.cast(builder, decay, tys[7], types.boolean)
            scp = _data(context, builder, tys[6], sc)

            def scal(q):
                return _splat(builder, builder.load(builder.gep(scp, [ir.Constant(_I64, q)])),
                              vty)

            mask = _mask(builder, t)
            pp = _data(context, builder, tys[0], p)
            gp = _data(context, builder, tys[1], g)
            pv = _mload(builder, pp, off, mask, dty)
            gv = _mload(builder, gp, off, mask, dty)
            gv = builder.select(dec, _fma(builder, scal(_WD), pv, gv), gv)
            if kind == 0:
                pv = builder.fsub(pv, builder.fmul(scal(_LR), gv))
            elif kind in (1, 2):
                mp = _data(context, builder, tys[2], m)
                mu = scal(_MU)
                mv = _fma(builder, mu, _mload(builder, mp, off, mask, dty), gv)
                _mstore(builder, mv, mp, off, mask, dty)
                upd = mv if kind == 1 else _fma(builder, mu, mv, gv)
                pv = builder.fsub(pv, builder.fmul(scal(_LR), upd))
            else:
                mp = _data(context, builder, tys[2], m)
                vp = _data(context, builder, tys[3], v)
                mv = builder.fadd(builder.fmul(scal(_B1), _mload(builder, mp, off, mask, dty)),
                                  builder.fmul(scal(_OMB1), gv))
                vv = builder.fadd(builder.fmul(scal(_B2), _mload(builder, vp, off, mask, dty)),
                                  builder.fmul(builder.fmul(scal(_OMB2), gv), gv))
                _mstore(builder, mv, mp, off, mask, dty)
                _mstore(builder, vv, vp, off, mask, dty)
                sq = cgutils.get_or_insert_function(
                    builder.module, ir.FunctionType(vty, [vty]), f"llvm.sqrt.{_sfx(dty)}")
                den = builder.fadd(builder.fdiv(builder.call(sq, [vv]), scal(_BC2)), scal(_EPS))
                pv = builder.fsub(pv, builder.fdiv(builder.fmul(scal(_STEP), mv), den))
            _mstore(builder, pv, pp, off, mask, dty)
            _mstore(builder, ir.Constant(vty, None), gp, off, mask, dty)
            return context.get_dummy_value()

        return codegen

    def _make_update(kind):
        @intrinsic
        def blk(typingctx, p, g, m, v, off, t, sc, decay):
            return types.void(p, g, m, v, off, t, sc, decay), _dual(_update_codegen(kind), 5,
                                                                         VW)
        return blk

    blk_sgd, blk_momentum, blk_nesterov, blk_adam = (_make_update(q) for q in range(4))


    def _vexp(builder, x):
        """exp of a vector: float32 by Cody-Waite reduction and the Cephes degree-6 polynomial
        (max error ~1 ulp, the C kernels' vexp: overflow -> inf, x < -87.3 -> 0, NaN -> NaN);
        float64 by llvm.exp (libm's exp per lane, faithful)."""
        vty = x.type
        dty = vty.element
        if not isinstance(dty, ir.FloatType):
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]),
                                                f"llvm.exp.{_sfx(dty)}")
            return builder.call(fn, [x])
        ivty = ir.VectorType(_I32, VW)

        def k(c):
            return ir.Constant(vty, [float(c)] * VW)

        big = builder.fcmp_ordered(">", x, k(88.72283935546875))
        small = builder.fcmp_ordered("<", x, k(-87.33654022216797))
        nan = builder.fcmp_unordered("uno", x, x)
        bad = builder.or_(builder.or_(big, small), nan)
        xc = builder.select(bad, k(0.0), x)
        # numba's fastmath rewrite puts reassoc/contract on every fadd/fmul of the function,
        # so the reduction uses rounding and fma intrinsics, which it cannot reorder
        rnd = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vty, [vty]),
                                             f"llvm.roundeven.{_sfx(dty)}")
        fn_ = builder.call(rnd, [builder.fmul(xc, k(1.44269504088896341))])
        n = builder.fptosi(fn_, ivty)
        r = _fma(builder, fn_, k(-0.693359375), xc)
        r = _fma(builder, fn_, k(2.12194440e-4), r)
        p = k(1.9875691500e-4)
        for c in (1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
                  5.0000001201e-1):
            p = _fma(builder, p, r, k(c))
        p = builder.fadd(_fma(builder, p, builder.fmul(r, r), r), k(1.0))
        res = builder.bitcast(builder.add(builder.bitcast(p, ivty),
                                          builder.shl(n, ir.Constant(ivty, [23] * VW))), vty)
        res = builder.select(big, k(float("inf")), res)
        res = builder.select(small, k(0.0), res)
        return builder.select(nan, x, res)

    def _act_args(context, builder, sig, args):
        z, zo, t, b, bo = args
        tys = sig.args
        dty = context.get_value_type(tys[0].dtype)
        zo = _as_i64(context, builder, tys[1], zo)
        t = _as_i64(context, builder, tys[2], t)
        bo = _as_i64(context, builder, tys[4], bo)
        mask = _mask(builder, t)
        zp = _data(context, builder, tys[0], z)
        v = builder.fadd(_mload(builder, zp, zo, mask, dty),
                         _mload(builder, _data(context, builder, tys[3], b), bo, mask, dty))
        return zp, zo, mask, dty, v

    @intrinsic
    def blk_sigmoid(typingctx, z, zo, t, b, bo):
        """z[zo:zo+t] = 1 / (1 + exp(-(z + b[bo:bo+t])))."""
        sig = types.void(z, zo, t, b, bo)

        def codegen(context, builder, sig, args):
            zp, zo, mask, dty, v = _act_args(context, builder, sig, args)
            one = ir.Constant(_vty(dty), [1.0] * VW)
            e = _vexp(builder, builder.fsub(ir.Constant(_vty(dty), [0.0] * VW), v))
            _mstore(builder, builder.fdiv(one, builder.fadd(one, e)), zp, zo, mask, dty)
            return context.get_dummy_value()

        return sig, _dual(codegen, 2, VW)

    @intrinsic
    def blk_softmax(typingctx, z, zo, t, b, bo):
        """z[zo:zo+t] = softmax(z + b[bo:bo+t]) (t <= 16)."""
        sig = types.void(z, zo, t, b, bo)

        def codegen(context, builder, sig, args):
            zp, zo, mask, dty, v = _act_args(context, builder, sig, args)
            vty = _vty(dty)
            ninf = ir.Constant(vty, [float("-inf")] * VW)
            vm = builder.select(mask, v, ninf)
            # max over the lanes (NaN-propagating like the scalar loop is not needed: a NaN
            # lane makes every output NaN through the sum either way)
            n = VW
            w = vm
            while n > 1:
                h = n // 2
                lo = builder.shuffle_vector(w, w, ir.Constant(ir.VectorType(_I32, h),
                                                              list(range(h))))
                hi = builder.shuffle_vector(w, w, ir.Constant(ir.VectorType(_I32, h),
                                                              list(range(h, n))))
                w = builder.select(builder.fcmp_ordered(">", hi, lo), hi, lo)
                n = h
            mx = builder.extract_element(w, ir.Constant(_I32, 0))
            e = _vexp(builder, builder.fsub(v, _splat(builder, mx, vty)))
            e = builder.select(mask, e, ir.Constant(vty, None))
            s = _hsum(builder, e)
            _mstore(builder, builder.fdiv(e, _splat(builder, s, vty)), zp, zo, mask, dty)
            return context.get_dummy_value()

        return sig, _dual(codegen, 2, VW)


    @intrinsic
    def blk_mvs4(typingctx, z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc):
        """blk_mvs over 49..64 lanes (four 16-lane blocks per row)."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(True, 4), 2, 4 * VW)

    @intrinsic
    def blk_mvd4(typingctx, z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc):
        """blk_mvd over 49..64 lanes (four 16-lane blocks per row)."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(False, 4), 2, 4 * VW)


    @intrinsic
    def blk_mvs2(typingctx, z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc):
        """blk_mvs over 17..32 lanes (two 16-lane blocks per row)."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, idx, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(True, 2), 2, 2 * VW)

    @intrinsic
    def blk_mvd2(typingctx, z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc):
        """blk_mvd over 17..32 lanes (two 16-lane blocks per row)."""
        sig = types.void(z, zo, t, M, mo, ldm, c, co, cs, cnt, alpha, acc)
        return sig, _dual(_mv_codegen(False, 2), 2, 2 * VW)

    @intrinsic
    def blk_axpy_rows2(typingctx, W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """blk_axpy_rows over 17..32 lanes (two 16-lane blocks per row)."""
        sig = types.void(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
        return sig, _dual(_axpy_rows_codegen(2), 3, 2 * VW)


    @intrinsic
    def blk_rank1_rows(typingctx, W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do):
        """W[wo+k*ldw : +t] += (alpha * x[xo+k]) * d[do:do+t] for k0 <= k < k1 (t <= 16;
        idx is ignored): one sample's plain SGD step on a dense layer's weight rows."""
        sig = types.void(W, wo, ldw, t, x, xo, idx, k0, k1, alpha, d, do)
        return sig, _dual(_axpy_rows_codegen(1, dense=True), 3, VW)
