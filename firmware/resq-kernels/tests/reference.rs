//! The reference kernels against independent oracles.
//!
//! Every oracle here is written from `SPEC.md` (section Arithmetic) without reusing the
//! kernels' own helpers: exact rounding is done in i128 with `div_euclid`, convolution walks
//! the unpadded input only and applies the *unfolded* bias, so the kernels' zero-point folding
//! at the borders is checked rather than copied. Outputs are pre-filled with a sentinel so a
//! kernel that skips an element fails.

use proptest::prelude::*;
use resq_kernels::reference::{self, AddOperand};
use resq_kernels::{finish, round_shift, Epilogue, Geometry, ResidualOperand};

/// Written into every output buffer before a kernel runs.
const SENTINEL: i8 = 0x55;

// ---------------------------------------------------------------------------------------------
// Exact arithmetic helpers (the oracle side).

/// `floor((v + 2^(s−1)) / 2^s)` computed exactly: round half up.
fn exact_round_shift(v: i128, shift: u32) -> i128 {
    (v + (1i128 << (shift - 1))).div_euclid(1i128 << shift)
}

/// `clamp(zero_point + exact_round_shift(v, shift), lo, hi)`.
fn exact_requantize(v: i128, shift: u8, zero_point: i8, clamp: [i8; 2]) -> i8 {
    let q = exact_round_shift(v, shift as u32) + zero_point as i128;
    q.clamp(clamp[0] as i128, clamp[1] as i128) as i8
}

/// Output size of a window along one axis (the window always fits in these tests).
fn out_dim(
    input: usize,
    kernel: usize,
    stride: usize,
    pad_before: usize,
    pad_after: usize,
) -> usize {
    (input + pad_before + pad_after - kernel) / stride + 1
}

/// Input index of output `o`, tap `k`, or `None` when the tap lands in padding.
fn tap(o: usize, k: usize, stride: usize, pad_before: usize, input: usize) -> Option<usize> {
    let i = (o * stride + k) as isize - pad_before as isize;
    (0..input as isize).contains(&i).then_some(i as usize)
}

/// A 2-D window: kernel, stride and independent padding on all four sides.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// Input `[h, w]`.
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pad: [usize; 4],
}

impl Window {
    fn output(&self) -> [usize; 2] {
        [0, 1].map(|a| {
            out_dim(
                self.input[a],
                self.kernel[a],
                self.stride[a],
                self.pad[a],
                self.pad[a + 2],
            )
        })
    }

    fn geometry(&self, cin: usize, cout: usize) -> Geometry {
        let [oh, ow] = self.output();
        Geometry {
            input: [self.input[0], self.input[1], cin],
            output: [oh, ow, cout],
            kernel: self.kernel,
            stride: self.stride,
            pad: [self.pad[0], self.pad[1]],
        }
    }

    /// Input cells `(y, x)` under the window of output `(oy, ox)`, padding skipped.
    fn cells(&self, oy: usize, ox: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let rows = (0..self.kernel[0])
            .filter_map(move |ky| tap(oy, ky, self.stride[0], self.pad[0], self.input[0]));
        rows.flat_map(move |y| {
            (0..self.kernel[1])
                .filter_map(move |kx| tap(ox, kx, self.stride[1], self.pad[1], self.input[1]))
                .map(move |x| (y, x))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Window with kernel up to `max_kernel`, stride 1..=3, each pad `0..kernel` (asymmetric, like
/// TF SAME), input 1..=9 per axis, grown if needed so the window fits.
fn window(max_kernel: usize) -> impl Strategy<Value = Window> {
    (
        [1..=max_kernel, 1..=max_kernel],
        [1..=3usize, 1..=3usize],
        [1..=9usize, 1..=9usize],
    )
        .prop_flat_map(|(kernel, stride, input)| {
            let pads = [0..kernel[0], 0..kernel[1], 0..kernel[0], 0..kernel[1]];
            (Just(kernel), Just(stride), Just(input), pads)
        })
        .prop_map(|(kernel, stride, input, pad)| {
            let input = [0, 1].map(|a| input[a].max(kernel[a].saturating_sub(pad[a] + pad[a + 2])));
            Window {
                input,
                kernel,
                stride,
                pad,
            }
        })
}

/// Non-negative multiplier spread over all magnitudes 0..=2^31−1 (log-uniform-ish), so both
/// saturating and in-range outputs are common.
fn multiplier() -> impl Strategy<Value = i32> {
    (0..=i32::MAX, 0..31u32).prop_map(|(m, k)| m >> k)
}

/// Multiplier of either sign over all magnitudes (residual multipliers are not sign-checked).
fn signed_multiplier() -> impl Strategy<Value = i32> {
    (any::<i32>(), 0..32u32).prop_map(|(m, k)| m >> k)
}

/// The full range half the time, else any `[lo, hi]` with `lo ≤ hi`.
fn clamp() -> impl Strategy<Value = [i8; 2]> {
    prop_oneof![
        Just([i8::MIN, i8::MAX]),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| [a.min(b), a.max(b)]),
    ]
}

fn i8s(len: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(any::<i8>(), len)
}

// ---------------------------------------------------------------------------------------------
// 1. round_shift

#[test]
fn round_shift_ties_go_towards_positive_infinity() {
    assert_eq!(round_shift(3, 1), 2); // 1.5 → 2
    assert_eq!(round_shift(-3, 1), -1); // −1.5 → −1
    assert_eq!(round_shift(-1, 1), 0); // −0.5 → 0
    assert_eq!(round_shift(1, 1), 1); // 0.5 → 1
    assert_eq!(round_shift(-5, 2), -1); // −1.25 → −1
    assert_eq!(round_shift(-6, 2), -1); // −1.5 → −1
    assert_eq!(round_shift(-7, 2), -2); // −1.75 → −2
    let max = (1i64 << 62) - 1;
    assert_eq!(round_shift(max, 62), 1);
    assert_eq!(round_shift(-max, 62), -1);
    assert_eq!(round_shift(-(1i64 << 61), 62), 0); // exactly −0.5
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn round_shift_is_exact_rational_rounding(
        v in -((1i64 << 62) - 1)..(1i64 << 62),
        shift in 1..=62u8,
    ) {
        prop_assert_eq!(round_shift(v, shift) as i128, exact_round_shift(v as i128, shift as u32));
    }

    #[test]
    fn round_shift_is_exact_near_rounding_ties(
        q in -(1i64 << 20)..(1i64 << 20),
        delta in -2i64..=2,
        shift in 1..=40u8,
    ) {
        // Values right around (q + ½) · 2^shift, where rounding direction matters.
        let v = q * (1i64 << shift) + (1i64 << (shift - 1)) + delta;
        prop_assert_eq!(round_shift(v, shift) as i128, exact_round_shift(v as i128, shift as u32));
    }

    #[test]
    fn finish_is_clamped_exact_requantization(
        v in -((1i64 << 62) - 1)..(1i64 << 62),
        shift in 1..=62u8,
        zp in any::<i8>(),
        clamp in clamp(),
    ) {
        prop_assert_eq!(finish(v, shift, zp, clamp), exact_requantize(v as i128, shift, zp, clamp));
    }

    /// The epilogue at the extremes the loader allows: any i32 accumulator, any multiplier,
    /// any residual, shift up to 62 — no i64 overflow and exact rounding.
    #[test]
    fn epilogue_is_exact_for_extreme_accumulators(
        acc in any::<i32>(),
        mult in prop_oneof![Just(i32::MAX), multiplier()],
        residual in proptest::option::of((any::<i8>(), any::<i8>(), signed_multiplier())),
        shift in 1..=62u8,
        zp in any::<i8>(),
        clamp in clamp(),
    ) {
        let values = [residual.map_or(0, |r| r.0)];
        let ep = Epilogue {
            bias: &[0],
            mults: &[mult],
            shift,
            zero_point: zp,
            clamp,
            residual: residual.map(|(_, rzp, rmult)| ResidualOperand {
                values: &values,
                zero_point: rzp,
                mult: rmult,
            }),
        };
        let mut v = acc as i128 * mult as i128;
        if let Some((r, rzp, rmult)) = residual {
            v += (r as i128 - rzp as i128) * rmult as i128;
        }
        prop_assert_eq!(ep.apply(acc, 0, 0), exact_requantize(v, shift, zp, clamp));
    }
}

// ---------------------------------------------------------------------------------------------
// 2. conv2d against a naive i64 oracle

/// Channel structure of a convolution.
#[derive(Clone, Copy, Debug)]
struct Channels {
    cin: usize,
    cout: usize,
    groups: usize,
}

/// Groups ∈ {1, 2, C (depthwise, channel multiplier 1 or 2)}, channel counts 1..=17 around the
/// SIMD tile sizes 4, 8 and 16.
fn channels() -> impl Strategy<Value = Channels> {
    prop_oneof![
        (1..=17usize, 1..=17usize).prop_map(|(cin, cout)| Channels {
            cin,
            cout,
            groups: 1
        }),
        (1..=8usize, 1..=8usize).prop_map(|(cin_g, cout_g)| Channels {
            cin: 2 * cin_g,
            cout: 2 * cout_g,
            groups: 2,
        }),
        (1..=17usize, 1..=2usize).prop_map(|(c, m)| Channels {
            cin: c,
            cout: c * m,
            groups: c
        }),
    ]
}

/// A convolution with its *unfolded* bias (real bias / (s_in·s_w), before the zero-point fold).
#[derive(Clone, Debug)]
struct ConvCase {
    window: Window,
    ch: Channels,
    input: Vec<i8>,
    input_zp: i8,
    /// `[cout][kh][kw][cin / groups]`.
    weights: Vec<i8>,
    bias: Vec<i32>,
    mults: Vec<i32>,
    shift: u8,
    output_zp: i8,
    clamp: [i8; 2],
    /// Values, zero point, multiplier.
    residual: Option<(Vec<i8>, i8, i32)>,
}

impl ConvCase {
    fn output_len(&self) -> usize {
        let [oh, ow] = self.window.output();
        oh * ow * self.ch.cout
    }

    fn dot_len(&self) -> usize {
        self.window.kernel[0] * self.window.kernel[1] * self.ch.cin / self.ch.groups
    }

    fn weights_of(&self, c: usize) -> &[i8] {
        &self.weights[c * self.dot_len()..][..self.dot_len()]
    }

    /// `bias − zp_in · Σw`: what the converter stores and the kernel expects.
    fn folded_bias(&self) -> Vec<i32> {
        (0..self.ch.cout)
            .map(|c| {
                let sum_w: i32 = self.weights_of(c).iter().map(|&w| w as i32).sum();
                self.bias[c] - self.input_zp as i32 * sum_w
            })
            .collect()
    }

    /// Runs the reference kernel.
    fn run_kernel(&self) -> Vec<i8> {
        let bias = self.folded_bias();
        let ep = Epilogue {
            bias: &bias,
            mults: &self.mults,
            shift: self.shift,
            zero_point: self.output_zp,
            clamp: self.clamp,
            residual: self
                .residual
                .as_ref()
                .map(|(values, zp, mult)| ResidualOperand {
                    values,
                    zero_point: *zp,
                    mult: *mult,
                }),
        };
        let mut out = vec![SENTINEL; self.output_len()];
        let geo = self.window.geometry(self.ch.cin, self.ch.cout);
        reference::conv2d(
            &geo,
            self.ch.groups,
            &self.input,
            self.input_zp,
            &self.weights,
            &ep,
            &mut out,
        );
        out
    }

    /// Exact integer accumulators `bias + Σ (x − zp_in) · w` over the taps inside the input,
    /// `[oh][ow][cout]`.
    fn exact_accumulators(&self) -> Vec<i64> {
        let w = &self.window;
        let [oh, ow] = w.output();
        let Channels { cin, cout, groups } = self.ch;
        let (cin_g, cout_g) = (cin / groups, cout / groups);
        let [kh, kw] = w.kernel;
        let mut accs = Vec::with_capacity(self.output_len());
        for oy in 0..oh {
            for ox in 0..ow {
                for c in 0..cout {
                    let g = c / cout_g;
                    let mut acc = self.bias[c] as i64;
                    for ky in 0..kh {
                        let Some(y) = tap(oy, ky, w.stride[0], w.pad[0], w.input[0]) else {
                            continue;
                        };
                        for kx in 0..kw {
                            let Some(x) = tap(ox, kx, w.stride[1], w.pad[1], w.input[1]) else {
                                continue;
                            };
                            for i in 0..cin_g {
                                let xv = self.input[(y * w.input[1] + x) * cin + g * cin_g + i];
                                let wv = self.weights[((c * kh + ky) * kw + kx) * cin_g + i];
                                acc += (xv as i64 - self.input_zp as i64) * wv as i64;
                            }
                        }
                    }
                    accs.push(acc);
                }
            }
        }
        accs
    }

    /// The spec's arithmetic, computed exactly.
    fn run_oracle(&self) -> Vec<i8> {
        let cout = self.ch.cout;
        self.exact_accumulators()
            .into_iter()
            .enumerate()
            .map(|(i, acc)| {
                let mut v = acc as i128 * self.mults[i % cout] as i128;
                if let Some((values, zp, mult)) = &self.residual {
                    v += (values[i] as i128 - *zp as i128) * *mult as i128;
                }
                exact_requantize(v, self.shift, self.output_zp, self.clamp)
            })
            .collect()
    }
}

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (window(5), channels())
        .prop_flat_map(|(window, ch)| {
            let [oh, ow] = window.output();
            let out_len = oh * ow * ch.cout;
            let dot = window.kernel[0] * window.kernel[1] * ch.cin / ch.groups;
            (
                (Just(window), Just(ch)),
                i8s(window.input[0] * window.input[1] * ch.cin),
                any::<i8>(),
                proptest::collection::vec(-127i8..=127, ch.cout * dot),
                proptest::collection::vec(-(1i32 << 26)..(1i32 << 26), ch.cout),
                proptest::collection::vec(multiplier(), ch.cout),
                (1..=40u8, any::<i8>(), clamp()),
                proptest::option::of((i8s(out_len), any::<i8>(), signed_multiplier())),
            )
        })
        .prop_map(
            |(
                (window, ch),
                input,
                input_zp,
                weights,
                bias,
                mults,
                (shift, output_zp, clamp),
                residual,
            )| {
                ConvCase {
                    window,
                    ch,
                    input,
                    input_zp,
                    weights,
                    bias,
                    mults,
                    shift,
                    output_zp,
                    clamp,
                    residual,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn conv2d_equals_naive_oracle_with_unfolded_bias(case in conv_case()) {
        prop_assert_eq!(case.run_kernel(), case.run_oracle());
    }
}

/// A hand-checkable border case: 3×3 all-ones kernel, pad 1, input all equal to the zero point
/// except the centre. Every output is `bias + (centre − zp)` where the window covers the centre.
#[test]
fn conv2d_padding_reads_the_zero_point() {
    let zp = -20i8;
    let mut input = vec![zp; 9];
    input[4] = zp + 7;
    let case = ConvCase {
        window: Window {
            input: [3, 3],
            kernel: [3, 3],
            stride: [1, 1],
            pad: [1, 1, 1, 1],
        },
        ch: Channels {
            cin: 1,
            cout: 1,
            groups: 1,
        },
        input,
        input_zp: zp,
        weights: vec![1; 9],
        bias: vec![100],
        mults: vec![1 << 10],
        shift: 10,
        output_zp: 0,
        clamp: [i8::MIN, i8::MAX],
        residual: None,
    };
    assert_eq!(case.run_kernel(), vec![107; 9]);
    assert_eq!(case.run_oracle(), vec![107; 9]);
}

// ---------------------------------------------------------------------------------------------
// 3. Float cross-check: integer pipeline vs the real-valued layer.

/// Real-valued quantization of a convolution: scales and float bias.
#[derive(Clone, Debug)]
struct RealConv {
    case: ConvCase,
    s_in: f64,
    s_w: Vec<f64>,
    /// Real bias per output channel.
    bias: Vec<f64>,
    /// Output range in LSBs: `s_out = max |real output| / range`.
    range: f64,
    relu: bool,
    /// Residual values, zero point and scale as a fraction of `s_out`.
    residual: Option<(Vec<i8>, i8, f64)>,
}

fn real_conv() -> impl Strategy<Value = RealConv> {
    conv_case()
        .prop_flat_map(|case| {
            let cout = case.ch.cout;
            let out_len = case.output_len();
            (
                Just(case),
                0.005f64..0.1,
                proptest::collection::vec(0.001f64..0.05, cout),
                proptest::collection::vec(-2000.0f64..2000.0, cout),
                60.0f64..120.0,
                (any::<bool>(), -5i8..=5),
                proptest::option::of((i8s(out_len), any::<i8>(), 0.05f64..0.5)),
            )
        })
        .prop_map(
            |(mut case, s_in, s_w, bias_units, range, (relu, output_zp), residual)| {
                case.output_zp = output_zp;
                let bias = bias_units
                    .iter()
                    .zip(&s_w)
                    .map(|(u, s)| u * s_in * s)
                    .collect();
                RealConv {
                    case,
                    s_in,
                    s_w,
                    bias,
                    range,
                    relu,
                    residual,
                }
            },
        )
}

impl RealConv {
    /// Quantizes the layer the way the converter does, returning the integer layer and `s_out`.
    fn quantize(&self) -> (ConvCase, f64) {
        let mut case = self.case.clone();
        let cout = case.ch.cout;
        // Real outputs without the residual set the output scale.
        let accs = self.exact_accumulators_without_bias();
        let max_abs = accs
            .iter()
            .enumerate()
            .map(|(i, &a)| (self.s_in * self.s_w[i % cout] * a as f64 + self.bias[i % cout]).abs())
            .fold(0.0, f64::max);
        let max_w = self.s_w.iter().copied().fold(0.0, f64::max);
        // Keep every requantization ratio below 1, as for any real network.
        let s_out = (max_abs / self.range).max(self.s_in * max_w);
        let mut ratios: Vec<f64> = self.s_w.iter().map(|s| self.s_in * s / s_out).collect();
        if let Some((_, _, r)) = self.residual {
            ratios.push(r);
        }
        let largest = ratios.iter().copied().fold(0.0, f64::max);
        let shift = ((i32::MAX as f64 / largest).log2().floor() as u8).min(62);
        let to_mult = |r: f64| (r * 2f64.powi(shift as i32)).round() as i32;
        case.mults = ratios[..cout].iter().map(|&r| to_mult(r)).collect();
        case.shift = shift;
        case.bias = (0..cout)
            .map(|c| (self.bias[c] / (self.s_in * self.s_w[c])).round() as i32)
            .collect();
        case.clamp = if self.relu {
            [case.output_zp, i8::MAX]
        } else {
            [i8::MIN, i8::MAX]
        };
        case.residual = self
            .residual
            .as_ref()
            .map(|(values, zp, r)| (values.clone(), *zp, to_mult(*r)));
        (case, s_out)
    }

    fn exact_accumulators_without_bias(&self) -> Vec<i64> {
        let mut case = self.case.clone();
        case.bias = vec![0; case.ch.cout];
        case.exact_accumulators()
    }

    /// `round(real / s_out) + zp_out`, unclamped, in f64.
    fn real_expected(&self, s_out: f64) -> Vec<f64> {
        let cout = self.case.ch.cout;
        self.exact_accumulators_without_bias()
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let c = i % cout;
                let mut real = self.s_in * self.s_w[c] * a as f64 + self.bias[c];
                if let Some((values, zp, r)) = &self.residual {
                    real += r * s_out * (values[i] as f64 - *zp as f64);
                }
                (real / s_out).round() + self.case.output_zp as f64
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn conv2d_is_within_one_lsb_of_the_real_layer(layer in real_conv()) {
        let (case, s_out) = layer.quantize();
        let got = case.run_kernel();
        for (i, (&q, &want)) in got.iter().zip(&layer.real_expected(s_out)).enumerate() {
            let [lo, hi] = case.clamp;
            if want < lo as f64 || want > hi as f64 {
                continue; // saturated
            }
            prop_assert!(
                (q as f64 - want).abs() <= 1.0,
                "output {i}: int8 {q}, real {want} (shift {}, mults {:?})",
                case.shift,
                case.mults
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Pooling, add, pad, subsample.

#[derive(Clone, Debug)]
struct PoolCase {
    window: Window,
    channels: usize,
    input: Vec<i8>,
}

fn pool_case() -> impl Strategy<Value = PoolCase> {
    (window(4), 1..=17usize).prop_flat_map(|(window, channels)| {
        i8s(window.input[0] * window.input[1] * channels).prop_map(move |input| PoolCase {
            window,
            channels,
            input,
        })
    })
}

impl PoolCase {
    fn output_len(&self) -> usize {
        let [oh, ow] = self.window.output();
        oh * ow * self.channels
    }

    fn geometry(&self) -> Geometry {
        self.window.geometry(self.channels, self.channels)
    }

    fn max_pool(&self) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.output_len()];
        reference::max_pool(&self.geometry(), &self.input, &mut out);
        out
    }

    /// Applies `f(values inside the window, window area)` per output cell and channel.
    fn oracle(&self, f: impl Fn(&[i8], usize) -> i8) -> Vec<i8> {
        let [oh, ow] = self.window.output();
        let (iw, c) = (self.window.input[1], self.channels);
        let area = self.window.kernel[0] * self.window.kernel[1];
        let mut out = Vec::new();
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let cells: Vec<i8> = self
                        .window
                        .cells(oy, ox)
                        .map(|(y, x)| self.input[(y * iw + x) * c + ch])
                        .collect();
                    out.push(f(&cells, area));
                }
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn max_pool_equals_max_over_cells_inside_the_input(case in pool_case()) {
        let want = case.oracle(|cells, _| *cells.iter().max().expect("window has a cell inside"));
        prop_assert_eq!(case.max_pool(), want);
    }

    #[test]
    fn avg_pool_equals_exact_oracle(
        case in pool_case(),
        count_include_pad in any::<bool>(),
        input_zp in any::<i8>(),
        mults in proptest::collection::vec(multiplier(), 16),
        shift in 1..=40u8,
        output_zp in any::<i8>(),
    ) {
        let mut got = vec![SENTINEL; case.output_len()];
        reference::avg_pool(
            &case.geometry(),
            count_include_pad,
            &case.input,
            input_zp,
            &mults,
            shift,
            output_zp,
            &mut got,
        );
        let want = case.oracle(|cells, area| {
            let sum: i128 = cells.iter().map(|&x| x as i128 - input_zp as i128).sum();
            let n = if count_include_pad { area } else { cells.len() };
            exact_requantize(sum * mults[n - 1] as i128, shift, output_zp, [i8::MIN, i8::MAX])
        });
        prop_assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// `Geometry::window` (the pooling kernels' taps) yields exactly the oracle's cells, in
    /// order, and knows how many are left; past the output it yields none that are not
    /// inside the input.
    #[test]
    fn geometry_window_is_the_cells_inside_the_input(window in window(5)) {
        let geo = window.geometry(1, 1);
        let [oh, ow] = window.output();
        for oy in 0..oh + 2 {
            for ox in 0..ow + 2 {
                let want: Vec<(usize, usize)> = window.cells(oy, ox).collect();
                let mut taps = geo.window(oy, ox);
                prop_assert_eq!(taps.len(), want.len());
                let mut got = Vec::new();
                while let Some(cell) = taps.next() {
                    got.push(cell);
                    prop_assert_eq!(taps.len(), want.len() - got.len());
                }
                prop_assert_eq!(got, want);
            }
        }
    }
}

fn pool_geometry(input: [usize; 3], kernel: usize, stride: usize, pad: usize) -> Geometry {
    let o = |i| out_dim(i, kernel, stride, pad, pad);
    Geometry {
        input,
        output: [o(input[0]), o(input[1]), input[2]],
        kernel: [kernel; 2],
        stride: [stride; 2],
        pad: [pad; 2],
    }
}

#[test]
fn max_pool_padding_never_wins() {
    let geo = pool_geometry([3, 3, 2], 3, 2, 1);
    for fill in [i8::MIN, -100, -1] {
        let input = vec![fill; 18];
        let mut out = vec![SENTINEL; 8];
        reference::max_pool(&geo, &input, &mut out);
        assert_eq!(out, vec![fill; 8], "input all {fill}");
    }
}

#[test]
fn avg_pool_count_include_pad_at_borders() {
    // 3×3 input all 10 (zero point 0), 3×3 window, pad 1: corner windows hold 4 cells,
    // edge windows 6, the centre 9. mults[n − 1] = 2^16 / n.
    let geo = pool_geometry([3, 3, 1], 3, 1, 1);
    let mults: Vec<i32> = (1..=9)
        .map(|n| ((1 << 16) as f64 / n as f64).round() as i32)
        .collect();
    let run = |include| {
        let mut out = vec![SENTINEL; 9];
        reference::avg_pool(&geo, include, &[10; 9], 0, &mults, 16, 0, &mut out);
        out
    };
    // 40/9 = 4.44, 60/9 = 6.67, 90/9 = 10.
    assert_eq!(run(true), vec![4, 7, 4, 7, 10, 7, 4, 7, 4]);
    assert_eq!(run(false), vec![10; 9]);
}

#[test]
fn avg_pool_subtracts_the_input_zero_point_and_adds_the_output_one() {
    let geo = pool_geometry([2, 2, 1], 2, 2, 0);
    let mults: Vec<i32> = (1..=4).map(|n| (1 << 20) / n).collect();
    let mut out = [SENTINEL];
    // Σ(x − zp) = −1 + 1 + 3 + 5 = 8 → 8 / 4 = 2, + 7 = 9.
    reference::avg_pool(&geo, false, &[-4, -2, 0, 2], -3, &mults, 20, 7, &mut out);
    assert_eq!(out, [9]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn add_equals_exact_oracle(
        pairs in proptest::collection::vec((any::<i8>(), any::<i8>()), 1..=40),
        (za, zb, zp) in (any::<i8>(), any::<i8>(), any::<i8>()),
        (ma, mb) in (multiplier(), multiplier()),
        shift in 1..=40u8,
        clamp in clamp(),
    ) {
        let (a, b): (Vec<i8>, Vec<i8>) = pairs.into_iter().unzip();
        let mut got = vec![SENTINEL; a.len()];
        reference::add(
            AddOperand { values: &a, zero_point: za, mult: ma },
            AddOperand { values: &b, zero_point: zb, mult: mb },
            shift,
            zp,
            clamp,
            &mut got,
        );
        let want: Vec<i8> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| {
                let v = (x as i128 - za as i128) * ma as i128 + (y as i128 - zb as i128) * mb as i128;
                exact_requantize(v, shift, zp, clamp)
            })
            .collect();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn add_saturates_at_both_ends() {
    let one = 1 << 8; // multiplier 1.0 at shift 8
    let run = |a: &[i8], b: &[i8], zp: i8, clamp| {
        let mut out = vec![SENTINEL; a.len()];
        reference::add(
            AddOperand {
                values: a,
                zero_point: 0,
                mult: one,
            },
            AddOperand {
                values: b,
                zero_point: 0,
                mult: one,
            },
            8,
            zp,
            clamp,
            &mut out,
        );
        out
    };
    let full = [i8::MIN, i8::MAX];
    assert_eq!(
        run(
            &[127, -128, 100, -100, 60],
            &[127, -128, 27, -28, 3],
            0,
            full
        ),
        [127, -128, 127, -128, 63]
    );
    assert_eq!(run(&[100, -100], &[28, -29], 0, full), [127, -128]);
    assert_eq!(run(&[0, 0], &[0, 0], 127, full), [127, 127]);
    assert_eq!(run(&[-1, 0, 1], &[0, 0, 0], -128, full), [-128, -128, -127]);
    // A fused ReLU6-like clamp.
    assert_eq!(run(&[-5, 3, 50], &[0, 0, 0], 0, [0, 6]), [0, 3, 6]);
}

#[derive(Clone, Debug)]
struct PadCase {
    shape: [usize; 3],
    /// `[top, bottom, left, right, c_before, c_after]`.
    pads: [usize; 6],
    zero_point: i8,
    input: Vec<i8>,
}

fn pad_case() -> impl Strategy<Value = PadCase> {
    (
        [1..=6usize, 1..=6usize, 1..=5usize],
        [0..=3usize, 0..=3, 0..=3, 0..=3, 0..=3, 0..=3],
        any::<i8>(),
    )
        .prop_flat_map(|(shape, pads, zero_point)| {
            i8s(shape.iter().product()).prop_map(move |input| PadCase {
                shape,
                pads,
                zero_point,
                input,
            })
        })
}

impl PadCase {
    fn output_shape(&self) -> [usize; 3] {
        let [h, w, c] = self.shape;
        let [t, b, l, r, cb, ca] = self.pads;
        [t + h + b, l + w + r, cb + c + ca]
    }

    fn run(&self) -> Vec<i8> {
        let mut out = vec![SENTINEL; self.output_shape().iter().product()];
        reference::pad(
            self.shape,
            self.pads,
            self.zero_point,
            &self.input,
            &mut out,
        );
        out
    }

    fn oracle(&self) -> Vec<i8> {
        let [h, w, c] = self.shape;
        let [t, _, l, _, cb, _] = self.pads;
        let [oh, ow, oc] = self.output_shape();
        let inside =
            |o: usize, before: usize, len: usize| o.checked_sub(before).filter(|&i| i < len);
        let mut out = Vec::new();
        for y in 0..oh {
            for x in 0..ow {
                for ch in 0..oc {
                    out.push(
                        match (inside(y, t, h), inside(x, l, w), inside(ch, cb, c)) {
                            (Some(iy), Some(ix), Some(ic)) => self.input[(iy * w + ix) * c + ic],
                            _ => self.zero_point,
                        },
                    );
                }
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn pad_equals_oracle(case in pad_case()) {
        prop_assert_eq!(case.run(), case.oracle());
    }
}

#[test]
fn pad_fills_channels_before_and_after_with_the_zero_point() {
    let case = PadCase {
        shape: [1, 2, 2],
        pads: [0, 0, 0, 0, 1, 2],
        zero_point: -3,
        input: vec![5, 6, 7, 8],
    };
    assert_eq!(case.run(), [-3, 5, 6, -3, -3, -3, 7, 8, -3, -3]);
    let spatial = PadCase {
        shape: [1, 1, 1],
        pads: [1, 0, 0, 1, 0, 0],
        zero_point: 9,
        input: vec![-1],
    };
    assert_eq!(spatial.run(), [9, 9, -1, 9]);
}

#[derive(Clone, Debug)]
struct SubsampleCase {
    shape: [usize; 3],
    start: [usize; 2],
    step: [usize; 2],
    input: Vec<i8>,
}

fn subsample_case() -> impl Strategy<Value = SubsampleCase> {
    ([1..=12usize, 1..=12usize, 1..=5usize], [1..=4usize, 1..=4])
        .prop_flat_map(|(shape, step)| {
            (
                Just(shape),
                Just(step),
                [0..shape[0], 0..shape[1]],
                i8s(shape.iter().product()),
            )
        })
        .prop_map(|(shape, step, start, input)| SubsampleCase {
            shape,
            start,
            step,
            input,
        })
}

impl SubsampleCase {
    /// `ceil((dim − start) / step)` per axis, as the loader computes it.
    fn output_hw(&self) -> [usize; 2] {
        [0, 1].map(|a| (self.shape[a] - self.start[a]).div_ceil(self.step[a]))
    }

    fn run(&self) -> Vec<i8> {
        let [oh, ow] = self.output_hw();
        let mut out = vec![SENTINEL; oh * ow * self.shape[2]];
        reference::subsample(
            self.shape,
            [oh, ow],
            self.start,
            self.step,
            &self.input,
            &mut out,
        );
        out
    }

    fn oracle(&self) -> Vec<i8> {
        let [_, w, c] = self.shape;
        let rows = (self.start[0]..self.shape[0]).step_by(self.step[0]);
        let mut out = Vec::new();
        for y in rows {
            for x in (self.start[1]..w).step_by(self.step[1]) {
                out.extend_from_slice(&self.input[(y * w + x) * c..][..c]);
            }
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn subsample_equals_oracle(case in subsample_case()) {
        prop_assert_eq!(case.run(), case.oracle());
    }
}

#[test]
fn subsample_takes_start_then_every_step() {
    // 1×5×1 input 0..5, start 1, step 2 → columns 1 and 3.
    let case = SubsampleCase {
        shape: [1, 5, 1],
        start: [0, 1],
        step: [1, 2],
        input: vec![0, 1, 2, 3, 4],
    };
    assert_eq!(case.run(), [1, 3]);
}
