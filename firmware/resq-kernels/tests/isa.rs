//! Every ISA's fast kernels against the reference, bit for bit.
//!
//! Each supported tier ([`Isa::ALL`] minus what this CPU or build cannot run, which is skipped
//! with a message) runs the same random cases as `reference`: shapes with pixel and channel
//! counts at, below and above each micro-kernel's tile (`mr`, `nr`, `kr`), strides, asymmetric
//! pads, groups including depthwise, zero points, multipliers and shifts over their whole
//! range, residual adds and clamps. Outputs are pre-filled with a sentinel so a skipped element
//! fails. The work is also split by rows and by panels the way the engine's threads split it.

use proptest::prelude::*;
use resq_kernels::dwconv::DwPlan;
use resq_kernels::gemm::{GemmPlan, GemmTile, MAX_MR};
use resq_kernels::{pool, reference, Epilogue, Geometry, Isa, Kernels, ResidualOperand};

const SENTINEL: i8 = 0x55;

/// The fast tiers this machine runs (the reference is the oracle, not a candidate).
/// `RESQ_REQUIRE_TIERS=generic,neon,…` (set by tests/tests/cross.rs for each emulated CPU)
/// fails the run unless exactly those tiers run.
fn tiers() -> Vec<Kernels> {
    let mut out = Vec::new();
    for isa in Isa::ALL {
        if isa == Isa::Reference {
            continue;
        }
        match Kernels::new(isa) {
            Some(k) => out.push(k),
            None => eprintln!("skipping {isa}: not supported by this CPU or build"),
        }
    }
    if let Ok(required) = std::env::var("RESQ_REQUIRE_TIERS") {
        let ran: Vec<String> = out.iter().map(|k| k.isa().to_string()).collect();
        assert_eq!(
            ran.join(","),
            required,
            "RESQ_REQUIRE_TIERS: the fast tiers this CPU runs"
        );
    }
    out
}

#[derive(Clone, Debug)]
struct Case {
    geo: Geometry,
    groups: usize,
    input: Vec<i8>,
    input_zp: i8,
    weights: Vec<i8>,
    bias: Vec<i32>,
    mults: Vec<i32>,
    shift: u8,
    output_zp: i8,
    clamp: [i8; 2],
    residual: Option<(Vec<i8>, i8, i32)>,
}

impl Case {
    fn epilogue<'a>(&'a self, bias: &'a [i32]) -> Epilogue<'a> {
        Epilogue {
            bias,
            mults: &self.mults,
            shift: self.shift,
            zero_point: self.output_zp,
            clamp: self.clamp,
            residual: self.residual.as_ref().map(|(v, zp, m)| ResidualOperand {
                values: v,
                zero_point: *zp,
                mult: *m,
            }),
        }
    }

    fn output_len(&self) -> usize {
        self.geo.output.iter().product()
    }

    fn reference(&self) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.output_len()];
        reference::conv2d(
            &self.geo,
            self.groups,
            &self.input,
            self.input_zp,
            &self.weights,
            &self.epilogue(&self.bias),
            &mut out,
        );
        out
    }

    /// The fast path as the engine drives it: pack, prepare, then `splits` pieces of rows
    /// (or of panels for a single-pixel output), each writing only its own slice.
    fn fast(&self, k: &Kernels, splits: usize) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.output_len()];
        let oc = self.geo.output[2];
        if DwPlan::applies(&self.geo, self.groups) {
            let plan = DwPlan::new(&self.geo);
            let mut packed = vec![0; plan.packed_len()];
            plan.pack(&self.weights, &mut packed);
            let mut a = vec![0u8; plan.prep.len()];
            let rows = plan.prep.rows();
            plan.prep.run(
                &self.input,
                self.input_zp,
                0..rows,
                &mut a[..rows * plan.prep.row_bytes()],
            );
            let ep = self.epilogue(&self.bias);
            for r in pieces(plan.rows(), splits) {
                let chunk = &mut out[r.start * oc..r.end * oc];
                plan.run(k, &a, &packed, &ep, chunk, r.start * oc, r);
            }
            return out;
        }
        let plan = GemmPlan::new(&self.geo, self.groups, k.gemm());
        let mut packed = vec![0; plan.packed_len()];
        plan.pack(&self.weights, &mut packed);
        let mut bias = vec![0; oc];
        plan.pack_bias(&packed, &self.bias, k.gemm().a_format.offset(), &mut bias);
        let mut scratch = vec![0u8; plan.prep.len()];
        let input_bytes: Vec<u8> = self.input.iter().map(|&v| v as u8).collect();
        let a: &[u8] = if plan.prep.is_identity() {
            &input_bytes
        } else {
            // Prepare in pieces too, as the engine's threads do.
            let rb = plan.prep.row_bytes();
            for r in pieces(plan.prep.rows(), splits) {
                plan.prep.run(
                    &self.input,
                    self.input_zp,
                    r.clone(),
                    &mut scratch[r.start * rb..r.end * rb],
                );
            }
            &scratch
        };
        let ep = self.epilogue(&bias);
        if plan.rows() == 1 {
            // One output pixel (a fully-connected layer): split by panels.
            for p in pieces(plan.panels(), splits) {
                let c0 = plan.panel_channels(p.start).0;
                let c1 = if p.end == plan.panels() {
                    oc
                } else {
                    plan.panel_channels(p.end).0
                };
                plan.run(k.gemm(), a, &packed, &ep, &mut out[c0..c1], c0, 0..1, p);
            }
        } else {
            for r in pieces(plan.rows(), splits) {
                let chunk = &mut out[r.start * oc..r.end * oc];
                plan.run(
                    k.gemm(),
                    a,
                    &packed,
                    &ep,
                    chunk,
                    r.start * oc,
                    r,
                    0..plan.panels(),
                );
            }
        }
        out
    }
}

/// `n` split into `k` nearly equal contiguous pieces (empty ones dropped).
fn pieces(n: usize, k: usize) -> Vec<std::ops::Range<usize>> {
    (0..k)
        .map(|i| n * i / k..n * (i + 1) / k)
        .filter(|r| !r.is_empty())
        .collect()
}

/// Channel counts at, below and above the tiles: kr = 4, nr ∈ {8, 16, 64}.
fn channels() -> impl Strategy<Value = usize> {
    prop_oneof![
        1usize..=9,
        prop::sample::select(vec![
            3usize, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129
        ]),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    // (groups kind, cin per group, cout per group)
    let shape = (
        0usize..4,
        channels(),
        channels(),
        1usize..=9,
        1usize..=9,
        1usize..=4,
        1usize..=4,
        1usize..=3,
        1usize..=3,
    );
    (shape, any::<[u8; 4]>(), any::<u64>()).prop_filter_map(
        "window larger than the padded input",
        |((gk, cin_g, cout_g, ih, iw, kh, kw, sh, sw), pads, seed)| {
            // gk: 0, 1 → one group; 2 → 2 or 3 groups; 3 → depthwise.
            let (groups, cin_g, cout_g) = match gk {
                0 | 1 => (1, cin_g, cout_g),
                2 => (2 + (seed % 2) as usize, cin_g.min(20), cout_g.min(20)),
                _ => {
                    let c = cin_g.max(2);
                    (c, 1, 1)
                }
            };
            let pad = [
                pads[0] as usize % kh,
                pads[1] as usize % kw,
                pads[2] as usize % kh,
                pads[3] as usize % kw,
            ];
            let (ph, pw) = (ih + pad[0] + pad[2], iw + pad[1] + pad[3]);
            if ph < kh || pw < kw {
                return None;
            }
            let (oh, ow) = ((ph - kh) / sh + 1, (pw - kw) / sw + 1);
            let (cin, cout) = (cin_g * groups, cout_g * groups);
            if oh * ow * cout * kh * kw * cin_g > 400_000 {
                return None;
            }
            let geo = Geometry {
                input: [ih, iw, cin],
                output: [oh, ow, cout],
                kernel: [kh, kw],
                stride: [sh, sw],
                pad: [pad[0], pad[1]],
            };
            Some(Case::random(geo, groups, seed))
        },
    )
}

/// xorshift64*: cheap deterministic values from one proptest seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn i8s(&mut self, n: usize) -> Vec<i8> {
        // Mostly uniform, sometimes the extremes.
        (0..n)
            .map(|_| match self.next() % 8 {
                0 => -128,
                1 => 127,
                _ => self.next() as i8,
            })
            .collect()
    }
}

impl Case {
    fn random(geo: Geometry, groups: usize, seed: u64) -> Case {
        let mut rng = Rng(seed | 1);
        let [ih, iw, cin] = geo.input;
        let [oh, ow, cout] = geo.output;
        let k = geo.kernel[0] * geo.kernel[1] * (cin / groups);
        let bound = (i32::MAX as i64 - 255 * 127 * k as i64).min(1 << 26);
        // Shifts that keep outputs mostly inside int8, and sometimes any shift at all.
        let wide = rng.next().is_multiple_of(4);
        let shift = if wide {
            rng.range(1, 62) as u8
        } else {
            rng.range(24, 40) as u8
        };
        let mults = (0..cout)
            .map(|_| match rng.next() % 6 {
                0 => i32::MAX,
                1 => 0,
                _ => rng.range(0, i32::MAX as i64) as i32 >> rng.range(0, 20),
            })
            .collect();
        let lo = rng.next() as i8;
        let hi = rng.next() as i8;
        let residual = rng.next().is_multiple_of(2).then(|| {
            let mult = match rng.next() % 4 {
                0 => i32::MIN,
                1 => i32::MAX,
                _ => rng.range(-(1 << 30), 1 << 30) as i32,
            };
            (rng.i8s(oh * ow * cout), rng.next() as i8, mult)
        });
        Case {
            geo,
            groups,
            input: rng.i8s(ih * iw * cin),
            input_zp: rng.next() as i8,
            weights: rng.i8s(cout * k),
            bias: (0..cout).map(|_| rng.range(-bound, bound) as i32).collect(),
            mults,
            shift,
            output_zp: rng.next() as i8,
            clamp: [lo.min(hi), lo.max(hi)],
            residual,
        }
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let expected = case.reference();
    for k in tiers() {
        for splits in [1, 3] {
            let got = case.fast(&k, splits);
            prop_assert_eq!(&got, &expected, "{} ({} pieces)", k.isa(), splits);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn every_isa_conv_equals_reference(case in case()) {
        check(&case)?;
    }
}

/// Shapes of real ResNet layers (small spatial size), each on every tier.
#[test]
fn resnet_layer_shapes_are_exact() {
    // (input h=w, cin, cout, kernel, stride, pad)
    let layers = [
        (18, 3, 64, 7, 2, 3),    // stem
        (8, 64, 64, 3, 1, 1),    // basic block
        (8, 64, 128, 3, 2, 1),   // strided 3×3
        (8, 64, 128, 1, 2, 0),   // projection shortcut
        (7, 256, 64, 1, 1, 0),   // bottleneck reduce
        (7, 64, 256, 1, 1, 0),   // bottleneck expand
        (1, 512, 1000, 1, 1, 0), // fully-connected
        (1, 2048, 10, 1, 1, 0),  // small classifier
        (5, 3, 7, 1, 1, 0),      // 1×1 on channels not a multiple of kr (no read past the input)
        (5, 5, 9, 1, 1, 0),
        (1, 13, 3, 1, 1, 0),
    ];
    for (i, &(hw, cin, cout, k, s, p)) in layers.iter().enumerate() {
        let o = (hw + 2 * p - k) / s + 1;
        let geo = Geometry {
            input: [hw, hw, cin],
            output: [o, o, cout],
            kernel: [k, k],
            stride: [s, s],
            pad: [p, p],
        };
        let case = Case::random(geo, 1, 1000 + i as u64);
        check(&case).unwrap_or_else(|e| panic!("layer {i}: {e}"));
    }
}

/// Accumulators at the loader's limits: the longest dot product, extreme values everywhere.
#[test]
fn extreme_accumulators_are_exact() {
    let cin = 1024;
    let geo = Geometry {
        input: [3, 3, cin],
        output: [1, 1, 70],
        kernel: [3, 3],
        stride: [1, 1],
        pad: [0, 0],
    };
    let k = 9 * cin;
    let bound = i32::MAX - 255 * 127 * k as i32;
    for (x, w, zp, b) in [
        (-128i8, -128i8, 127i8, bound),
        (127, 127, -128, -bound),
        (-128, 127, 0, bound),
        (127, -128, -1, -bound),
    ] {
        let mut case = Case::random(geo, 1, 7);
        case.input.fill(x);
        case.weights.fill(w);
        case.input_zp = zp;
        case.bias.fill(b);
        case.shift = 40;
        check(&case).unwrap();
    }
}

/// Multipliers, shifts and residual multipliers at both ends of their ranges.
#[test]
fn extreme_epilogues_are_exact() {
    let geo = Geometry {
        input: [4, 5, 12],
        output: [4, 5, 70],
        kernel: [1, 1],
        stride: [1, 1],
        pad: [0, 0],
    };
    for (i, (mult, shift, rmult)) in [
        (i32::MAX, 1u8, i32::MIN),
        (i32::MAX, 62, i32::MAX),
        (0, 1, 1),
        (1, 62, -1),
        (1 << 30, 31, 1 << 30),
    ]
    .into_iter()
    .enumerate()
    {
        let mut case = Case::random(geo, 1, 100 + i as u64);
        case.mults.fill(mult);
        case.shift = shift;
        case.residual = Some((
            case.residual.map(|r| r.0).unwrap_or(vec![-128; 4 * 5 * 70]),
            127,
            rmult,
        ));
        case.clamp = [i8::MIN, i8::MAX];
        check(&case).unwrap();
    }
}

/// A tile that would read or write outside its slices is refused before any unsafe code runs.
#[test]
fn out_of_bounds_tiles_are_refused() {
    for k in tiers() {
        let g = k.gemm();
        let a = vec![0u8; 64 * g.a_format.size()];
        let w = vec![0i8; 64 * g.kr];
        let bias = vec![0i32; g.nr];
        let mults = vec![1i32; g.nr];
        let tile = GemmTile {
            a: &a,
            rows: [0; MAX_MR],
            mr: 1,
            taps: [1, 1],
            tap_stride: [0, 0],
            k_groups: 1,
            w: &w,
            nb: 1,
            bias: &bias,
            mults: &mults,
            shift: 1,
            zero_point: 0,
            clamp: [-128, 127],
            residual: None,
            out_offset: 0,
            out_stride: 1,
        };
        assert!(tile.fits(g, 1), "{}", g.name);
        let bad = [
            GemmTile {
                rows: [61, 0, 0, 0, 0, 0, 0, 0],
                ..tile
            },
            GemmTile {
                k_groups: 17,
                ..tile
            },
            GemmTile {
                mr: g.mr + 1,
                ..tile
            },
            GemmTile { mr: 0, ..tile },
            GemmTile {
                nb: g.nr + 1,
                ..tile
            },
            GemmTile {
                out_offset: 1,
                ..tile
            },
            GemmTile { shift: 0, ..tile },
            GemmTile { shift: 63, ..tile },
            GemmTile {
                taps: [usize::MAX, 2],
                ..tile
            },
            GemmTile {
                tap_stride: [0, usize::MAX],
                taps: [1, 2],
                ..tile
            },
            GemmTile {
                bias: &bias[..0],
                ..tile
            },
            GemmTile {
                w: &w[..g.kr - 1],
                ..tile
            },
        ];
        for (i, t) in bad.iter().enumerate() {
            assert!(!t.fits(g, 1), "{} bad tile {i} accepted", g.name);
            let refused = std::panic::catch_unwind(|| {
                let mut out = [0i8; 1];
                g.run(t, &mut out);
            });
            assert!(refused.is_err(), "{} ran bad tile {i}", g.name);
        }
        let mut out = [SENTINEL; 1];
        g.run(&tile, &mut out);
        assert_eq!(
            out,
            [0],
            "{}: bias 0, multiplier 1 gives the zero point",
            g.name
        );
    }
}

#[test]
fn isa_names_round_trip_and_unsupported_tiers_are_refused() {
    for isa in Isa::ALL {
        assert_eq!(Isa::parse(isa.name()), Some(isa));
        assert_eq!(Isa::parse(&isa.name().to_uppercase()), Some(isa));
        match Isa::choose(isa.name()) {
            Ok(i) => assert!(i.supported() && Kernels::new(i).is_some() == (i != Isa::Reference)),
            Err(e) => assert!(!isa.supported() && Kernels::new(isa).is_none(), "{e}"),
        }
    }
    assert!(Isa::parse("sse9").is_none());
    assert!(Isa::choose("sse9").is_err());
    assert!(Isa::detect().supported());
    eprintln!("detected: {}", Isa::detect());
}

#[test]
fn peak_measurements_run_on_every_tier_that_has_one() {
    for k in tiers() {
        if let Some(p) = k.peak_macs_per_second(20_000) {
            eprintln!("{}: {:.1} GMAC/s per core", k.isa(), p / 1e9);
            assert!(p > 1e8, "{}: {p}", k.isa());
        }
    }
}

#[derive(Clone, Debug)]
struct PoolCase {
    geo: Geometry,
    count_include_pad: bool,
    input: Vec<i8>,
    input_zp: i8,
    mults: Vec<i32>,
    shift: u8,
    output_zp: i8,
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    (
        1usize..=9,
        1usize..=9,
        channels(),
        1usize..=4,
        1usize..=3,
        0usize..=3,
        any::<bool>(),
        any::<u64>(),
    )
        .prop_filter_map("window", |(ih, iw, c, k, s, p, cip, seed)| {
            let p = p.min(k - 1);
            if ih + 2 * p < k || iw + 2 * p < k {
                return None;
            }
            let geo = Geometry {
                input: [ih, iw, c],
                output: [(ih + 2 * p - k) / s + 1, (iw + 2 * p - k) / s + 1, c],
                kernel: [k, k],
                stride: [s, s],
                pad: [p, p],
            };
            let mut rng = Rng(seed | 1);
            Some(PoolCase {
                geo,
                count_include_pad: cip,
                input: rng.i8s(ih * iw * c),
                input_zp: rng.next() as i8,
                mults: (0..k * k)
                    .map(|_| rng.range(0, i32::MAX as i64) as i32)
                    .collect(),
                shift: rng.range(1, 40) as u8,
                output_zp: rng.next() as i8,
            })
        })
}

proptest! {
    #[test]
    fn fast_pools_equal_reference(case in pool_case(), split in 1usize..4) {
        let n: usize = case.geo.output.iter().product();
        let c = case.geo.output[2];
        let rows = case.geo.output[0] * case.geo.output[1];
        let mut want = vec![SENTINEL; n];
        reference::max_pool(&case.geo, &case.input, &mut want);
        let mut got = vec![SENTINEL; n];
        for r in pieces(rows, split) {
            pool::max_pool(&case.geo, &case.input, &mut got[r.start * c..r.end * c], r);
        }
        prop_assert_eq!(&got, &want);

        reference::avg_pool(&case.geo, case.count_include_pad, &case.input, case.input_zp,
            &case.mults, case.shift, case.output_zp, &mut want);
        got.fill(SENTINEL);
        for r in pieces(rows, split) {
            pool::avg_pool(&case.geo, case.count_include_pad, &case.input, case.input_zp,
                &case.mults, case.shift, case.output_zp, &mut got[r.start * c..r.end * c], r);
        }
        prop_assert_eq!(&got, &want);
    }
}

/// On aarch64 (under qemu, or natively): each tier the CPU reports has its kernel, named as
/// its ISA, the tiers it does not report are refused, and `Isa::detect()` picks the best.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_tiers_have_their_kernels() {
    let cpu = [
        (Isa::Neon, true, "__neon_mull"),
        (
            Isa::Dotprod,
            std::arch::is_aarch64_feature_detected!("dotprod"),
            "__neondot",
        ),
        (
            Isa::I8mm,
            std::arch::is_aarch64_feature_detected!("i8mm"),
            "__neoni8mm",
        ),
    ];
    for (isa, has, suffix) in cpu {
        match Kernels::new(isa) {
            Some(k) => {
                assert!(has, "{isa} kernels handed out on a CPU without the feature");
                let g = k.gemm();
                assert!(
                    g.name.starts_with("qs8_qc8w_igemm_") && g.name.ends_with(suffix),
                    "{isa} kernel {}",
                    g.name
                );
                eprintln!(
                    "aarch64 kernel {isa}: {} ({} x {}, kr {}, {:?})",
                    g.name, g.mr, g.nr, g.kr, g.a_format
                );
            }
            None => assert!(!has, "{isa}: the CPU has it but this build has no kernel"),
        }
    }
    let best = cpu.iter().rev().find(|(_, has, _)| *has).unwrap().0;
    assert_eq!(Isa::detect(), best);
}
