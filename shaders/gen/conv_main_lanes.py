"""Writes shaders/conv_main_lanes.wgsl, whose register blocks are written out (WGSL has no macros,
and lavapipe neither unrolls loops nor keeps a dynamically indexed private array in
registers). Edit this script, not the .wgsl file, then run it:

    python3 shaders/gen/conv_main_lanes.py          # rewrite the shader
    python3 shaders/gen/conv_main_lanes.py --check  # exit 1 if the shader differs (tests/shaders_validate.rs)
"""

from write_shader import write_or_check

NP = 32
L = []
w = L.append
w("""// Written by shaders/gen/conv_main_lanes.py: edit that script, not this file.
//
// conv_main_lanes.wgsl: the subgroup variant of conv.wgsl's `conv_main` (gather or scatter, with
// fused bias, activation and accumulation), compiled after conv.wgsl in the `conv_lanes` family
// (gpu::shaders::COMPOSED) for devices with 8-lane subgroups (CPU drivers).
//
// Why: lavapipe loads every storage value lane by lane, so `conv_main`'s cost is its loads: each
// invocation loads its own 16 positions' pixels and the same 16 weights as every other lane,
// 32 values per lane for 256 FMAs. Here the 8 lanes of a subgroup share 32 output positions and
// split the output channels, like matmul_lanes.wgsl: per step lane l loads the pixels of
// positions l, l+8, l+16, l+24 (one vec4), the subgroup broadcasts them (an extract and a splat
// in registers), and each lane loads only its own 4*CB4L channels' weights: 4 + 4*CB4L values
// per lane for 128*CB4L FMAs (12 for 256 with CB4L = 2). With CB4L = 1 (32-channel outputs) a
// subgroup takes 64 positions instead (two loads of 4), which keeps that ratio.
//
// Entry point `conv_main_lanes`: workgroup (8,1,1) = one subgroup of exactly 8 lanes (the Rust
// side uses it only on adapters whose subgroups are 8 wide). A workgroup computes POS = 64 /
// CB4L positions x 32*CB4L output channels; lane l holds the POS positions x channels
// 4*CB4L*l.. of them (64 vec4 accumulators, acc<position>_<vec4>). Gather: the positions are
// consecutive entries of the flattened (image, row, column) output grid. Scatter: they are
// consecutive entries of one row qy0 of a phase (see conv.wgsl), in (image, column) order, so
// a tap row ty reads an input row qy0 - ty that is inside the input for all of them or for
// none, and the taps that are outside for all are skipped (conv_main computes them masked:
// 1.3-1.7x the useful FLOPs at the model's image sizes). Grid: x = output-channel blocks of
// 32*CB4L; y = position groups of POS, or when scattering groups per row x rows (rows
// fastest; times the s*s phases, fastest, unless FOLD); y folds into z. The packed weights `wp` must be padded to opad4 = a multiple of
// 8*CB4L vec4s. Bindings as `conv_main`: 1 in, 2 wp, 3 bias, 4 out.
// Overrides: SCATTER (conv.wgsl), CB4L: output-channel vec4s per lane, 1 or 2, FOLD (below).
//
// FOLD (with SCATTER): the s*s phases of a scatter folded into the channels, for narrow outputs
// (the decoder's last layer, 3 channels, would fill 3 of a subgroup's 32). Every phase reads
// the same input pixels (qy - ty, qx - tx) at tap (ty, tx); only the weights differ (ky = py +
// s*ty). So one workgroup takes positions (qy, qx) of the largest phase and virtual output
// channels o' = (py*s + px)*O + o, with the weights packed that way by `pack_w_fold`
// (taps ceil(kh/s) x ceil(kw/s), zero where ky or kx falls past the kernel); the store puts o'
// at pixel (s*qy + py, s*qx + px) of channel o. Grid y is then position groups only.
//
// PAIR (with FOLD, when 2 s*s*O channels fit a subgroup's 32): two output columns per position
// as well, since a folded layer of 3 channels still fills only 12 of the 32. Position (qy, j)
// stands for columns qx = 2j + d, d = 0, 1, and reads input pixel (qy - ty, 2j + 1 - u) at tap
// (ty, u), u = 0..ntx: the same pixel serves column 2j + d with tap tx = u - 1 + d, so the
// virtual channels become (d, phase, o), 24 for the decoder's last layer, over one tap column
// more (ntx + 1).
//
// Entry point `pack_w_fold`: wp_out[((ty*ntx + tx)*R + r)*opad4 + o'/4][o'%4] = w(o, r, py +
// s*ty, px + s*tx) for FOLD (strides as `pack_w`; with PAIR, tap u of virtual channel (d, o')
// is tx = u - 1 + d, zero outside the kernel). Workgroup (WG); uses 1 w, 6 wp_out.

override CB4L: u32 = 2u;
// Positions per workgroup.
override POS: u32 = 64u / CB4L;
override FOLD: bool = false;
override PAIR: bool = false;

// Image, row and column of position m: entry m of the flattened (image, row, column) output
// grid (gather), or entry m of phase row qy0's (image, column) positions (scatter).
fn lanes_position(m: u32, qhw: u32, qw: u32, qy0: u32) -> vec3<u32> {
    if SCATTER {
        let img = m / qw;
        return vec3<u32>(img, qy0, m - img * qw);
    }
    let img = m / qhw;
    let q = m - img * qhw;
    let y = q / qw;
    return vec3<u32>(img, y, q - y * qw);
}

// The position after c = (image, row, column): the next column, wrapping into the next row
// (gather) or the next image (scatter). The store walks its positions with this: no divisions
// (CPU drivers divide lane by lane).
fn lanes_next(c: vec3<u32>, qh: u32, qw: u32) -> vec3<u32> {
    var n = c;
    n.z += 1u;
    if n.z == qw {
        n.z = 0u;
        if SCATTER {
            n.x += 1u;
        } else {
            n.y += 1u;
            if n.y == qh {
                n.y = 0u;
                n.x += 1u;
            }
        }
    }
    return n;
}

// FOLD: virtual channels o..o+3 decoded once per lane: the phase's row and column offsets, the
// output channel, whether it exists, and its bias.
struct FoldChannels {
    dy: vec4<u32>,
    dx: vec4<u32>,
    oc: vec4<u32>,
    ok: vec4<bool>,
    bias: vec4<f32>,
    // PAIR: which column of the position's pair (0 without PAIR).
    dq: vec4<u32>,
}

fn fold_channels(o: u32) -> FoldChannels {
    let ov = vec4<u32>(o) + vec4<u32>(0u, 1u, 2u, 3u);
    let nf = p.s * p.s * p.o;
    let ok = ov < vec4<u32>(select(nf, 2u * nf, PAIR));
    let oc0 = select(vec4<u32>(0u), ov, ok);
    let dq = oc0 / nf;
    let vf = oc0 - dq * nf;
    let ph = vf / p.o;
    let oc = vf - ph * p.o;
    let dy = ph / p.s;
    var b = vec4<f32>(0.0);
    if p.has_bias != 0u {
        let bi = oc / p.bias_div;
        b = vec4<f32>(bias[bi.x], bias[bi.y], bias[bi.z], bias[bi.w]);
    }
    return FoldChannels(dy, ph - dy * p.s, oc, ok, b, dq);
}

// act(x) for 4 output channels.
fn lanes_act4(x: vec4<f32>) -> vec4<f32> {
    let a = p.act;
    return vec4<f32>(activate(x.x, a), activate(x.y, a), activate(x.z, a), activate(x.w, a));
}

// out[i] (+)= v where `ok`.
fn lanes_put1(i: u32, ok: bool, v: f32) {
    if ok {
        if p.acc != 0u { out[i] += v; } else { out[i] = v; }
    }
}

// Store (or add) act(v + bias) at position c = (image, row, column) for output channels
// o..o+3: `bv` their biases, or with FOLD the virtual channels `fc`. Written without loops over
// the 4 channels and without early returns: a CPU driver indexes a vector dynamically lane by
// lane and runs both sides of a branch that differs between lanes, which made the loop version
// of this epilogue cost more than the FMAs of the 3-channel layers.
fn lanes_store4(c: vec3<u32>, o: u32, v: vec4<f32>, bv: vec4<f32>, fc: FoldChannels, py: u32,
                px: u32) {
    if FOLD {
        let val = lanes_act4(v + fc.bias);
        let y = vec4<u32>(p.s * c.y) + fc.dy;
        let x = p.s * (vec4<u32>(select(c.z, 2u * c.z, PAIR)) + fc.dq) + fc.dx;
        let ok = fc.ok & (y < vec4<u32>(p.oh)) & (x < vec4<u32>(p.ow));
        let i = (vec4<u32>(c.x * p.o) + fc.oc) * (p.oh * p.ow) + y * p.ow + x;
        lanes_put1(i.x, ok.x, val.x);
        lanes_put1(i.y, ok.y, val.y);
        lanes_put1(i.z, ok.z, val.z);
        lanes_put1(i.w, ok.w, val.w);
    } else {
        let pix = select(c.y * p.ow + c.z, (py + p.s * c.y) * p.ow + px + p.s * c.z, SCATTER);
        store4(c.x * p.o * p.oh * p.ow + pix, o, v + bv);
    }
}

@compute @workgroup_size(WG)
fn pack_w_fold(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let nty = (p.kh + p.s - 1u) / p.s;
    let ntx = (p.kw + p.s - 1u) / p.s + select(0u, 1u, PAIR);
    let i = flat_id(wid, nwg, lid);
    if i >= nty * ntx * p.r * p.opad4 { return; }
    let o4 = i % p.opad4;
    let tr = i / p.opad4;
    let r = tr % p.r;
    let tap = tr / p.r;
    let ty = tap / ntx;
    let tx = tap - ty * ntx;
    let nf = p.s * p.s * p.o;
    var v = vec4<f32>(0.0);
    for (var j = 0u; j < 4u; j++) {
        let ov = o4 * 4u + j;
        if ov < select(nf, 2u * nf, PAIR) {
            let dq = ov / nf;
            let ph = (ov - dq * nf) / p.o;
            let oc = ov - dq * nf - ph * p.o;
            // PAIR: tap column u = tx serves kernel column tx - 1 + dq (none at u + dq = 0).
            let live = !PAIR || tx + dq > 0u;
            let txk = select(tx, tx + dq - 1u, PAIR && live);
            let ky = ph / p.s + p.s * ty;
            let kx = ph % p.s + p.s * txk;
            if live && ky < p.kh && kx < p.kw {
                v[j] = inp[oc * p.ws_o + r * p.ws_r + ky * p.kw + kx];
            }
        }
    }
    wp_out[i] = v;
}

@compute @workgroup_size(8, 1, 1)
fn conv_main_lanes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(subgroup_invocation_id) lane: u32) {
    var wy = fold_yz(wid, nwg);
    // Every branch before the loop is uniform in the subgroup (it depends on the workgroup).
    var py = 0u;
    var px = 0u;
    var qh = p.oh;
    var qw = p.ow;
    if FOLD {
        qh = (p.oh + p.s - 1u) / p.s;
        qw = (p.ow + p.s - 1u) / p.s;
        // PAIR: a position per pair of columns.
        if PAIR { qw = (qw + 1u) / 2u; }
    } else if SCATTER {
        let ph = wy % (p.s * p.s);
        wy = wy / (p.s * p.s);
        py = ph / p.s;
        px = ph % p.s;
        if py >= p.oh || px >= p.ow { return; }
        qh = (p.oh - py + p.s - 1u) / p.s;
        qw = (p.ow - px + p.s - 1u) / p.s;
    }
    let qhw = qh * qw;
    // Gather: positions m0.. of the whole flattened grid. Scatter: each phase row qy0 has its
    // own workgroups (its n * qw positions in (image, column) order), so that a tap's row is
    // inside the input for all of a workgroup's positions or for none, and the taps whose row
    // falls outside are skipped instead of computed masked.
    var qy0 = 0u;
    var mt = p.n * qhw;
    if SCATTER {
        // Rows fastest: consecutive workgroups take the rows of the same images, which stay
        // in cache (a workgroup index y = (position group, row) over the largest phase's rows).
        mt = p.n * qw;
        let rows = (p.oh + p.s - 1u) / p.s;
        qy0 = wy % rows;
        wy = wy / rows;
        if qy0 >= qh { return; }
    }
    let m0 = wy * POS;
    if m0 >= mt { return; }
    let ihw = p.ih * p.iw;
    // The positions whose pixels this lane loads: m0 + lane + 8t, t = 0..3 (and t = 4..7 for
    // the second half, `2`, when POS = 64). Past the end they repeat the last position: their
    // loads stay in range and they are not stored.
    let mv = min(vec4<u32>(m0 + lane) + vec4<u32>(0u, 8u, 16u, 24u), vec4<u32>(mt - 1u));
    let mv2 = min(mv + vec4<u32>(32u), vec4<u32>(mt - 1u));
    var img = mv / qhw;
    var q = mv - img * qhw;
    var yy = q / qw;
    var img2 = mv2 / qhw;
    var q2 = mv2 - img2 * qhw;
    var yy2 = q2 / qw;
    if SCATTER {
        img = mv / qw;
        q = mv - img * qw;
        yy = vec4<u32>(0u);
        img2 = mv2 / qw;
        q2 = mv2 - img2 * qw;
        yy2 = vec4<u32>(0u);
    }
    var xx = q - yy * qw;
    var xx2 = q2 - yy2 * qw;
    if PAIR {
        // The pair's pixel column for tap u = 0 (see PAIR above).
        xx = 2u * xx + 1u;
        xx2 = 2u * xx2 + 1u;
    }
    if SCATTER {
        yy = vec4<u32>(qy0);
        yy2 = vec4<u32>(qy0);
    }
    // Gather: offset of each window's top-left input pixel; scatter: offset of each image.
    let base = img * (p.r * ihw) + select(yy * (p.s * p.iw) + xx * p.s, vec4<u32>(0u), SCATTER);
    let base2 = img2 * (p.r * ihw) + select(yy2 * (p.s * p.iw) + xx2 * p.s, vec4<u32>(0u), SCATTER);
    // This lane's first weight vec4.
    let wl = wid.x * 8u * CB4L + lane * CB4L;
""")
for i in range(NP):
    w("    var acc%d_0 = vec4<f32>(0.0); var acc%d_1 = vec4<f32>(0.0);" % (i, i))
for i in range(NP, 2 * NP):
    w("    var acc%d_0 = vec4<f32>(0.0);" % i)
w("""    // One loop over (input channel, tap) steps, as in conv_main: gather has channels outer and
    // the kh x kw taps inner; scatter has this phase's taps outer (ky = py + s*ty, kx = px +
    // s*tx) and channels inner, with the offsets and masks recomputed at each new tap.
    let s = p.s;
    let kw = p.kw;
    let nr = p.r;
    let opad4 = p.opad4;
    var off = base;
    var off2 = base2;
    var mk = vec4<f32>(1.0);
    var mk2 = vec4<f32>(1.0);
    var steps = nr * p.kh * kw;
    var nty = 0u;
    var ntx = 0u;
    // Scatter: the rows of taps ty0..ty1 whose input row qy0 - ty is inside the input.
    var ty0 = 0u;
    if SCATTER {
        nty = (p.kh - min(py, p.kh) + s - 1u) / s;
        ntx = (p.kw - min(px, p.kw) + s - 1u) / s + select(0u, 1u, PAIR);
        if qy0 >= p.ih { ty0 = qy0 - p.ih + 1u; }
        let ty1 = min(nty, qy0 + 1u);
        steps = select(0u, (ty1 - ty0) * ntx * nr, ty1 > ty0);
    }
    let tg = TapGeom(kw, p.kh * kw, nr * opad4, p.iw - kw, ihw, opad4, nr,
                     ntx);
    var tw = TapWalk(0u, wl, 0u, 0u, 0u, wl, 0u, 0u, ty0);
    for (var it = 0u; it < steps; it++) {
        if SCATTER && tw.r == 0u {
            let iy = yy - vec4<u32>(tw.ty);
            let ix = xx - vec4<u32>(tw.tx);
            let ok = (yy >= vec4<u32>(tw.ty)) & (iy < vec4<u32>(p.ih)) & (xx >= vec4<u32>(tw.tx)) &
                     (ix < vec4<u32>(p.iw));
            off = base + select(vec4<u32>(0u), iy * p.iw + ix, ok);
            mk = select(vec4<f32>(0.0), vec4<f32>(1.0), ok);
            if POS > 32u {
                let iy2 = yy2 - vec4<u32>(tw.ty);
                let ix2 = xx2 - vec4<u32>(tw.tx);
                let ok2 = (yy2 >= vec4<u32>(tw.ty)) & (iy2 < vec4<u32>(p.ih)) &
                          (xx2 >= vec4<u32>(tw.tx)) & (ix2 < vec4<u32>(p.iw));
                off2 = base2 + select(vec4<u32>(0u), iy2 * p.iw + ix2, ok2);
                mk2 = select(vec4<f32>(0.0), vec4<f32>(1.0), ok2);
            }
            if FOLD {
                tw.wi = (tw.ty * ntx + tw.tx) * nr * opad4 + wl;
            } else {
                tw.wi = ((py + s * tw.ty) * kw + px + s * tw.tx) * nr * opad4 + wl;
            }
            tw.xo = 0u;
        }
        var xv = vec4<f32>(inp[off.x + tw.xo], inp[off.y + tw.xo], inp[off.z + tw.xo], inp[off.w + tw.xo]);
        if SCATTER { xv *= mk; }
        // Lane j's vec4 holds positions j, j+8, j+16, j+24 (constant lane ids).""")
for j in range(8):
    w("        let v%d = subgroupBroadcast(xv, %du);" % (j, j))
comp = "xyzw"
def fmas(c, ind):
    out = []
    for i in range(NP):
        j, t = i % 8, i // 8
        out.append("%sacc%d_%d += v%d.%s * w%d;" % (ind, i, c, j, comp[t], c))
    return out
w("        let w0 = wp[tw.wi];")
L.extend(fmas(0, "        "))
w("        if CB4L > 1u {")
w("            let w1 = wp[tw.wi + 1u];")
L.extend(fmas(1, "            "))
w("        }")
w("        if POS > 32u {")
w("            var xw = vec4<f32>(inp[off2.x + tw.xo], inp[off2.y + tw.xo], inp[off2.z + tw.xo], inp[off2.w + tw.xo]);")
w("            if SCATTER { xw *= mk2; }")
for j in range(8):
    w("            let u%d = subgroupBroadcast(xw, %du);" % (j, j))
for i in range(NP):
    j, t = i % 8, i // 8
    w("            acc%d_0 += u%d.%s * w0;" % (NP + i, j, comp[t]))
w("        }")
w("""        tap_walk_next(&tw, tg);
    }

    // Store this lane's channels of the 32 positions: bias, activation, (accumulate).
    let o0 = wl * 4u;
    let valid = min(mt - m0, POS);
    // This lane's biases, loaded once (with FOLD, its virtual channels decoded once).
    var bv0 = vec4<f32>(0.0);
    var bv1 = vec4<f32>(0.0);
    var fc0: FoldChannels;
    var fc1: FoldChannels;
    if FOLD {
        fc0 = fold_channels(o0);
        fc1 = fold_channels(o0 + 4u);
    } else {
        bv0 = load_bias4(o0);
        bv1 = load_bias4(o0 + 4u);
    }
    // The positions m0.. in order, from the first one's coordinates.
    var c = lanes_position(m0, qhw, qw, qy0);
""")
for i in range(NP):
    cond = "" if i == 0 else "if valid > %du " % i
    w("    %s{" % cond)
    w("        lanes_store4(c, o0, acc%d_0, bv0, fc0, py, px);" % i)
    w("        if CB4L > 1u { lanes_store4(c, o0 + 4u, acc%d_1, bv1, fc1, py, px); }" % i)
    w("    }")
    w("    c = lanes_next(c, qh, qw);")
w("    if POS > 32u {")
for i in range(NP, 2 * NP):
    w("        if valid > %du { lanes_store4(c, o0, acc%d_0, bv0, fc0, py, px); }" % (i, i))
    w("        c = lanes_next(c, qh, qw);")
w("    }")
w("}")
write_or_check("conv_main_lanes.wgsl", "\n".join(L) + "\n")
