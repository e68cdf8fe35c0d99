//! A parsed and fully validated model borrowing its file.

use crate::error::short_name;
use crate::header::{Header, HEADER_LEN};
use crate::meta::*;
use crate::*;

/// A validated `.resq` file. Every index, shape and data range in it has been checked,
/// so the accessors below cannot fail.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    /// The decoded header.
    pub header: Header,
    /// The decoded and validated metadata.
    pub meta: Metadata<'a>,
    /// Which tensors are int16 (empty in version 1 files).
    pub precision: Precision,
    /// How frames are resized before the centre crop to the input (version 1 and 2 files:
    /// [`Resize::shorter_side`] of the input, the only recipe they knew).
    pub resize: Resize,
    data: &'a [u8],
}

/// Conv output size for one spatial axis, or `None` when the window does not fit.
pub fn conv_out_dim(input: u32, kernel: u16, stride: u16, pad_a: u16, pad_b: u16) -> Option<u32> {
    let padded = input + pad_a as u32 + pad_b as u32;
    if stride == 0 || padded < kernel as u32 {
        return None;
    }
    Some((padded - kernel as u32) / stride as u32 + 1)
}

struct Ctx<'m, 'a> {
    meta: &'m Metadata<'a>,
    data_len: u64,
    layer: usize,
}

impl<'a> Ctx<'_, 'a> {
    fn name(&self) -> heapless::String<64> {
        short_name(
            self.meta
                .layers
                .get(self.layer)
                .map_or("<graph>", |l| l.name),
        )
    }

    fn tensor(&self, what: &'static str, index: u16) -> Result<&TensorDesc<'a>, FormatError> {
        self.meta
            .tensors
            .get(index as usize)
            .ok_or_else(|| FormatError::TensorIndexOutOfRange {
                layer: self.layer,
                name: self.name(),
                what,
                index,
                count: self.meta.tensors.len(),
            })
    }

    fn range(
        &self,
        field: &'static str,
        value: i64,
        ok: bool,
        limit: &'static str,
    ) -> Result<(), FormatError> {
        if ok {
            Ok(())
        } else {
            Err(FormatError::OutOfRange {
                layer: self.layer,
                name: self.name(),
                field,
                value,
                limit,
            })
        }
    }

    fn shape(
        &self,
        what: &'static str,
        expected: [u64; 4],
        found: [u64; 4],
    ) -> Result<(), FormatError> {
        if expected == found {
            Ok(())
        } else {
            Err(FormatError::ShapeMismatch {
                layer: self.layer,
                name: self.name(),
                what,
                expected,
                found,
            })
        }
    }

    /// Checks a data range: in bounds, aligned to `elem` bytes, and holding exactly `count` elements.
    fn data(
        &self,
        field: &'static str,
        r: DataRef,
        elem: u32,
        count: u64,
    ) -> Result<(), FormatError> {
        let end = r.offset as u64 + r.len as u64;
        if end > self.data_len || !r.offset.is_multiple_of(elem) || !r.len.is_multiple_of(elem) {
            return Err(FormatError::BadDataRef {
                layer: self.layer,
                name: self.name(),
                field,
                offset: r.offset,
                len: r.len,
                data_len: self.data_len,
            });
        }
        self.shape(
            field,
            [count * elem as u64, 0, 0, 0],
            [r.len as u64, 0, 0, 0],
        )
    }

    fn same_quant(
        &self,
        what: &'static str,
        a: &TensorDesc,
        b: &TensorDesc,
    ) -> Result<(), FormatError> {
        if a.scale.to_bits() == b.scale.to_bits() && a.zero_point == b.zero_point {
            Ok(())
        } else {
            Err(FormatError::BadGraph {
                layer: self.layer,
                name: self.name(),
                why: what,
            })
        }
    }

    fn shift(&self, shift: u8) -> Result<(), FormatError> {
        self.range("shift", shift as i64, (1..=62).contains(&shift), "1..=62")
    }

    fn window(&self, kernel: [u16; 2], stride: [u16; 2], pad: [u16; 4]) -> Result<(), FormatError> {
        for k in kernel {
            self.range("kernel", k as i64, (1..=MAX_KERNEL).contains(&k), "1..=64")?;
        }
        for s in stride {
            self.range("stride", s as i64, (1..=MAX_STRIDE).contains(&s), "1..=16")?;
        }
        for p in pad {
            self.range("pad", p as i64, p <= MAX_KERNEL, "0..=64")?;
        }
        Ok(())
    }

    /// Pooling pads must be smaller than the window, so every window sees a real cell.
    fn pool_pad(&self, kernel: [u16; 2], pad: [u16; 4]) -> Result<(), FormatError> {
        for (side, &p) in pad.iter().enumerate() {
            self.range(
                "pad",
                p as i64,
                p < kernel[side % 2],
                "smaller than the window",
            )?;
        }
        Ok(())
    }

    fn window_out(
        &self,
        input: &TensorDesc,
        kernel: [u16; 2],
        stride: [u16; 2],
        pad: [u16; 4],
        c: u32,
    ) -> Result<[u64; 4], FormatError> {
        let oh = conv_out_dim(input.shape[1], kernel[0], stride[0], pad[0], pad[2]);
        let ow = conv_out_dim(input.shape[2], kernel[1], stride[1], pad[1], pad[3]);
        match (oh, ow) {
            (Some(oh), Some(ow)) => Ok([1, oh as u64, ow as u64, c as u64]),
            _ => Err(FormatError::BadGraph {
                layer: self.layer,
                name: self.name(),
                why: "the window is larger than the padded input",
            }),
        }
    }
}

fn dims(shape: [u32; 4]) -> [u64; 4] {
    shape.map(|d| d as u64)
}

impl<'a> Model<'a> {
    /// Parses and validates a whole file held in `file`.
    ///
    /// `file` must be 4-byte aligned in memory so i32 data can be borrowed in place
    /// (otherwise [`FormatError::Misaligned`]).
    pub fn parse(file: &'a [u8]) -> Result<Model<'a>, FormatError> {
        if cfg!(target_endian = "big") {
            return Err(FormatError::BigEndianTarget);
        }
        let header = Header::parse(file)?;
        // The header checked every offset against the file length, so these slices are in bounds.
        let meta_end = (header.meta_offset + header.meta_len) as usize;
        let meta_bytes = &file[HEADER_LEN..meta_end];
        let data = &file[header.data_offset as usize..];
        if !(data.as_ptr() as usize).is_multiple_of(4) {
            return Err(FormatError::Misaligned);
        }
        let (meta, rest): (Metadata<'a>, &[u8]) = postcard::take_from_bytes(meta_bytes)
            .map_err(|e| FormatError::BadMetadata(postcard_why(e)))?;
        // Version 2 appends the int16 block; version 1 files are all int8.
        let (precision, rest) = if header.version >= 2 {
            postcard::take_from_bytes::<Precision>(rest)
                .map_err(|e| FormatError::BadMetadata(postcard_why(e)))?
        } else {
            (Precision::default(), rest)
        };
        // Version 3 appends the resize recipe: a mode tag and `[width, height]`, decoded as
        // plain integers so an unknown mode is its own error rather than "bad metadata".
        let (resize, rest) = if header.version >= 3 {
            let (wire, rest) = postcard::take_from_bytes::<(u32, [u32; 2])>(rest)
                .map_err(|e| FormatError::BadMetadata(postcard_why(e)))?;
            (Some(wire), rest)
        } else {
            (None, rest)
        };
        // `meta_len` is the exact postcard length (so a damaged `meta_len`, which the CRC does
        // not cover, is refused); bytes up to the aligned data section must be zero padding.
        if !rest.is_empty()
            || file[meta_end..header.data_offset as usize]
                .iter()
                .any(|&b| b != 0)
        {
            return Err(FormatError::BadMetadata(
                "unexpected bytes after the metadata",
            ));
        }
        let mut model = Model {
            header,
            meta,
            precision,
            resize: Resize::shorter_side(0, 0),
            data,
        };
        model.validate()?;
        // The input tensor is valid now.
        let t = model.input();
        let input = [t.shape[2], t.shape[1]];
        model.resize = match resize {
            Some((mode, size)) => check_resize(mode, size, input)?,
            None => Resize::shorter_side(input[0], input[1]),
        };
        Ok(model)
    }

    /// The raw data section.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// An int8 array from the data section.
    pub fn i8s(&self, r: DataRef) -> &'a [i8] {
        bytemuck::cast_slice(self.bytes(r))
    }

    /// An i16 array from the data section (int16 weights; validated as aligned at load).
    pub fn i16s(&self, r: DataRef) -> &'a [i16] {
        bytemuck::try_cast_slice(self.bytes(r)).unwrap_or(&[])
    }

    /// An i64 array from the data section (the biases of int16-weight layers; validated as
    /// aligned at load).
    pub fn i64s(&self, r: DataRef) -> &'a [i64] {
        bytemuck::try_cast_slice(self.bytes(r)).unwrap_or(&[])
    }

    /// Whether convolution layer `layer` has int16 weights and i64 biases.
    pub fn has_int16_weights(&self, layer: usize) -> bool {
        self.precision
            .int16_weights
            .iter()
            .any(|&l| l as usize == layer)
    }

    /// An i32 array from the data section (validated as aligned at load).
    pub fn i32s(&self, r: DataRef) -> &'a [i32] {
        bytemuck::try_cast_slice(self.bytes(r)).unwrap_or(&[])
    }

    fn bytes(&self, r: DataRef) -> &'a [u8] {
        let start = r.offset as usize;
        start
            .checked_add(r.len as usize)
            .and_then(|end| self.data.get(start..end))
            .unwrap_or(&[])
    }

    /// Tensor descriptor by index (validated).
    pub fn tensor(&self, index: u16) -> &TensorDesc<'a> {
        &self.meta.tensors[index as usize]
    }

    /// Whether tensor `index` is stored as int16 (else int8).
    pub fn is_int16(&self, index: u16) -> bool {
        self.int16_clamp(index).is_some()
    }

    /// The writer's clamp of an int16 tensor, `None` for int8 tensors.
    pub fn int16_clamp(&self, index: u16) -> Option<[i16; 2]> {
        self.precision
            .int16
            .iter()
            .find(|t| t.tensor == index)
            .map(|t| t.clamp)
    }

    /// Bytes of tensor `index` (elements × 1 or 2).
    pub fn tensor_bytes(&self, index: u16) -> usize {
        self.tensor(index).elems() * if self.is_int16(index) { 2 } else { 1 }
    }

    /// The input tensor descriptor.
    pub fn input(&self) -> &TensorDesc<'a> {
        self.tensor(self.meta.input.tensor)
    }

    /// The output tensor descriptor.
    pub fn output(&self) -> &TensorDesc<'a> {
        self.tensor(self.meta.output.tensor)
    }

    /// Class labels (may be empty).
    pub fn labels(&self) -> impl Iterator<Item = &'a str> {
        let labels = self.meta.labels;
        labels.lines().filter(move |_| !labels.is_empty())
    }

    /// Number of output classes.
    pub fn classes(&self) -> usize {
        self.output().elems()
    }

    /// Bytes of int8 weights, i32 biases and multipliers (the payload of the data section).
    pub fn weight_bytes(&self) -> u64 {
        self.meta
            .layers
            .iter()
            .map(|l| match l.op {
                Op::Conv(c) => {
                    c.weights.len as u64 + c.bias.len as u64 + c.requant.mults.len as u64
                }
                Op::AvgPool(p) => p.mults.len as u64,
                _ => 0,
            })
            .sum()
    }

    fn validate(&self) -> Result<(), FormatError> {
        let meta = &self.meta;
        let mut cx = Ctx {
            meta,
            data_len: self.data.len() as u64,
            layer: meta.layers.len(),
        };
        // Tensors: shapes within limits.
        for (i, t) in meta.tensors.iter().enumerate() {
            let bad = |field, value: i64, limit| FormatError::OutOfRange {
                layer: i,
                name: short_name(t.name),
                field,
                value,
                limit,
            };
            if t.shape[0] != 1 {
                return Err(bad("tensor batch", t.shape[0] as i64, "must be 1"));
            }
            for d in &t.shape[1..] {
                if *d == 0 || *d > MAX_DIM {
                    return Err(bad("tensor dim", *d as i64, "1..=65536"));
                }
            }
            // In u64: on 32-bit targets the usize product of `elems()` could wrap.
            let elems: u64 = t.shape.iter().map(|&d| d as u64).product();
            if elems > MAX_TENSOR_ELEMS {
                return Err(bad("tensor elements", elems as i64, "at most 64 Mi"));
            }
            if !(t.scale.is_finite() && t.scale > 0.0) {
                return Err(bad("tensor scale", t.scale as i64, "finite and > 0"));
            }
        }
        // Graph inputs / outputs and self-test.
        let input = *cx.tensor("graph input", meta.input.tensor)?;
        let output = *cx.tensor("graph output", meta.output.tensor)?;
        let channels = input.shape[3] as u64;
        let want_c = if meta.input.channels == ChannelOrder::Grey {
            1
        } else {
            3
        };
        cx.shape(
            "graph input channels",
            [want_c, 0, 0, 0],
            [channels, 0, 0, 0],
        )?;
        cx.data("input lut", meta.input.lut, 1, 256 * channels)?;
        for m in meta.input.mean.iter().take(channels as usize) {
            cx.range("input mean", *m as i64, m.is_finite(), "finite")?;
        }
        for s in meta.input.std.iter().take(channels as usize) {
            cx.range(
                "input std",
                *s as i64,
                s.is_finite() && *s != 0.0,
                "finite and non-zero",
            )?;
        }
        cx.shape(
            "graph output",
            [1, 1, 1, output.shape[3] as u64],
            dims(output.shape),
        )?;
        cx.data(
            "self-test input",
            meta.self_test.input,
            1,
            input.elems() as u64,
        )?;
        cx.data(
            "self-test output",
            meta.self_test.expected,
            1,
            output.elems() as u64,
        )?;
        let classes = output.shape[3] as usize;
        let labels = meta.labels.lines().count();
        if !meta.labels.is_empty() && labels != classes {
            return Err(FormatError::ShapeMismatch {
                layer: meta.layers.len(),
                name: short_name("labels"),
                what: "label count vs classes",
                expected: [classes as u64, 0, 0, 0],
                found: [labels as u64, 0, 0, 0],
            });
        }

        self.validate_int16()?;

        // Layers: every tensor written exactly once, read only after it is written.
        let mut written = [false; MAX_TENSORS];
        written[meta.input.tensor as usize] = true;
        for (i, layer) in meta.layers.iter().enumerate() {
            cx.layer = i;
            for t in layer.op.inputs().into_iter().flatten() {
                cx.tensor("input", t)?;
                if !written[t as usize] {
                    return Err(FormatError::BadGraph {
                        layer: i,
                        name: cx.name(),
                        why: "reads a tensor that no earlier layer writes",
                    });
                }
            }
            let out = layer.op.output();
            cx.tensor("output", out)?;
            if written[out as usize] {
                return Err(FormatError::BadGraph {
                    layer: i,
                    name: cx.name(),
                    why: "writes a tensor that is already written",
                });
            }
            written[out as usize] = true;
            self.validate_op(&cx, &layer.op)?;
        }
        cx.layer = meta.layers.len();
        if !written[meta.output.tensor as usize] {
            return Err(FormatError::BadGraph {
                layer: cx.layer,
                name: short_name("<graph>"),
                why: "no layer writes the output tensor",
            });
        }
        // Last, so a reference out of bounds is reported as such rather than as an overlap.
        self.validate_disjoint()
    }

    /// No two data references share a byte. The writer gives every array its own bytes, and
    /// `Engine::from_bytes_in_place` rewrites a layer's weights in the file: bytes shared with
    /// another array would change that array's values too.
    ///
    /// Without allocating: files laid out in the writer's order pass in one pass; any other
    /// order compares every pair (at most 3 · `MAX_LAYERS` + 3 = 1539 references: about 7 ms
    /// on a desktop core; 80 µs for a ResNet-50's 166).
    fn validate_disjoint(&self) -> Result<(), FormatError> {
        let meta = &self.meta;
        // Each range starting at or after the end of all before it: pairwise disjoint.
        let mut end = 0u64;
        let in_order = data_refs(meta).all(|s| {
            let start = s.r.offset as u64;
            let ok = start >= end;
            end = end.max(start + s.r.len as u64);
            ok
        });
        if in_order {
            return Ok(());
        }
        for (i, a) in data_refs(meta).enumerate() {
            for b in data_refs(meta).skip(i + 1) {
                if overlap(a.r, b.r) {
                    let name = |layer: usize| {
                        short_name(meta.layers.get(layer).map_or("<graph>", |l| l.name))
                    };
                    return Err(FormatError::OverlappingData {
                        layer: a.layer,
                        name: name(a.layer),
                        field: a.field,
                        offset: a.r.offset,
                        len: a.r.len,
                        other_layer: b.layer,
                        other_name: name(b.layer),
                        other_field: b.field,
                        other_offset: b.r.offset,
                        other_len: b.r.len,
                    });
                }
            }
        }
        Ok(())
    }

    /// The int16 block: existing tensors, each once, symmetric, not the graph's input or
    /// output (those stay int8: the LUT writes the input, firmware reads int8 logits), and a
    /// clamp with min ≤ max.
    fn validate_int16(&self) -> Result<(), FormatError> {
        let meta = &self.meta;
        let mut seen = [false; MAX_TENSORS];
        for t in &self.precision.int16 {
            let desc = meta.tensors.get(t.tensor as usize);
            let bad = |why| FormatError::BadInt16 {
                tensor: t.tensor,
                name: short_name(desc.map_or("", |d| d.name)),
                why,
            };
            let Some(desc) = desc else {
                return Err(bad("no such tensor"));
            };
            if seen[t.tensor as usize] {
                return Err(bad("listed twice"));
            }
            seen[t.tensor as usize] = true;
            if t.tensor == meta.input.tensor {
                return Err(bad(
                    "the graph input is int8 (its lookup table writes int8)",
                ));
            }
            if t.tensor == meta.output.tensor {
                return Err(bad("the graph output is int8 logits"));
            }
            if desc.zero_point != 0 {
                return Err(bad("int16 tensors are symmetric: the zero point must be 0"));
            }
            if t.clamp[0] > t.clamp[1] {
                return Err(bad("clamp min is above max"));
            }
        }
        let mut seen = [false; MAX_LAYERS];
        for &l in &self.precision.int16_weights {
            let layer = l as usize;
            let bad = |why| FormatError::BadGraph {
                layer,
                name: short_name(meta.layers.get(layer).map_or("<int16 weights>", |l| l.name)),
                why,
            };
            match meta.layers.get(layer) {
                None => return Err(bad("int16 weights listed for a layer that does not exist")),
                Some(Layer {
                    op: Op::Conv(_), ..
                }) => {}
                Some(_) => {
                    return Err(bad(
                        "int16 weights listed for a layer that is not a convolution",
                    ))
                }
            }
            if seen[layer] {
                return Err(bad("int16 weights listed twice for this layer"));
            }
            seen[layer] = true;
        }
        // i64 biases are borrowed in place.
        if !self.precision.int16_weights.is_empty()
            && !(self.data.as_ptr() as usize).is_multiple_of(8)
        {
            return Err(FormatError::Misaligned);
        }
        Ok(())
    }

    /// A layer writing an int16 tensor must leave its int8 clamp at the full range (the int16
    /// block's clamp replaces it), so no file means two different things.
    fn int16_writer_clamp(
        &self,
        cx: &Ctx<'_, 'a>,
        output: u16,
        clamp: [i8; 2],
    ) -> Result<(), FormatError> {
        if self.is_int16(output) {
            cx.range(
                "clamp",
                clamp[0] as i64,
                clamp == [i8::MIN, i8::MAX],
                "[-128, 127] for a layer writing an int16 tensor (its clamp is in the int16 block)",
            )?;
        }
        Ok(())
    }

    /// Max pooling, padding and subsampling copy values: input and output share a type.
    fn same_type(&self, cx: &Ctx<'_, 'a>, input: u16, output: u16) -> Result<(), FormatError> {
        if self.is_int16(input) == self.is_int16(output) {
            Ok(())
        } else {
            Err(FormatError::BadGraph {
                layer: cx.layer,
                name: cx.name(),
                why: "copies values between an int8 and an int16 tensor; both must have the same type",
            })
        }
    }

    fn validate_op(&self, cx: &Ctx<'_, 'a>, op: &Op) -> Result<(), FormatError> {
        match *op {
            Op::Conv(c) => {
                let x = cx.tensor("input", c.input)?;
                let y = cx.tensor("output", c.output)?;
                cx.window(c.kernel, c.stride, c.pad)?;
                let cin = x.shape[3];
                let cout = y.shape[3];
                let g = c.groups as u32;
                cx.range(
                    "groups",
                    g as i64,
                    g >= 1 && cin.is_multiple_of(g) && cout.is_multiple_of(g),
                    "≥ 1 and dividing cin and cout",
                )?;
                let dot = (cin / g) as u64 * c.kernel[0] as u64 * c.kernel[1] as u64;
                cx.range(
                    "kh·kw·cin/groups",
                    dot as i64,
                    dot <= MAX_DOT_LEN as u64,
                    "at most 65536",
                )?;
                let expected = cx.window_out(x, c.kernel, c.stride, c.pad, cout)?;
                cx.shape("conv output", expected, dims(y.shape))?;
                let wide = self.has_int16_weights(cx.layer);
                let (w_size, b_size) = if wide { (2, 8) } else { (1, 4) };
                cx.data("weights", c.weights, w_size, cout as u64 * dot)?;
                cx.data("bias", c.bias, b_size, cout as u64)?;
                cx.data("multipliers", c.requant.mults, 4, cout as u64)?;
                cx.shift(c.requant.shift)?;
                // Keep the accumulator in range. int8: |Σ x·w| ≤ 255·127·dot in i32, plus the
                // bias. Layers reading int16 accumulate in i64 (mixed kernels): any i32 bias
                // fits; int16 weights: |Σ x·w| ≤ 2¹⁵·2¹⁵·2¹⁶ = 2⁴⁶ in i64, so |bias| ≤ 2⁶².
                let budget = if wide {
                    1i64 << 62
                } else if self.is_int16(c.input) {
                    i32::MAX as i64
                } else {
                    i32::MAX as i64 - 255 * 127 * dot as i64
                };
                let worst = if wide {
                    self.i64s(c.bias)
                        .iter()
                        .map(|b| b.unsigned_abs().min(i64::MAX as u64) as i64)
                        .max()
                        .unwrap_or(0)
                } else {
                    self.i32s(c.bias)
                        .iter()
                        .map(|b| (*b as i64).abs())
                        .max()
                        .unwrap_or(0)
                };
                cx.range(
                    "bias",
                    worst,
                    worst <= budget,
                    "small enough that the accumulator cannot overflow",
                )?;
                for m in self.i32s(c.requant.mults) {
                    cx.range("multiplier", *m as i64, *m >= 0, "≥ 0")?;
                }
                cx.range(
                    "clamp",
                    c.clamp[0] as i64,
                    c.clamp[0] <= c.clamp[1],
                    "min ≤ max",
                )?;
                self.int16_writer_clamp(cx, c.output, c.clamp)?;
                if let Some(r) = c.residual {
                    cx.range("residual multiplier", r.mult as i64, r.mult >= 0, "≥ 0")?;
                    let rt = cx.tensor("residual", r.tensor)?;
                    cx.shape("residual", dims(y.shape), dims(rt.shape))?;
                    if r.tensor == c.input && x.shape != y.shape {
                        cx.shape("residual", dims(y.shape), dims(x.shape))?;
                    }
                }
            }
            Op::MaxPool(p) => {
                let x = cx.tensor("input", p.input)?;
                let y = cx.tensor("output", p.output)?;
                cx.window(p.kernel, p.stride, p.pad)?;
                cx.pool_pad(p.kernel, p.pad)?;
                let expected = cx.window_out(x, p.kernel, p.stride, p.pad, x.shape[3])?;
                cx.shape("maxpool output", expected, dims(y.shape))?;
                cx.same_quant(
                    "max pooling must keep its input's scale and zero point",
                    x,
                    y,
                )?;
                self.same_type(cx, p.input, p.output)?;
            }
            Op::AvgPool(a) => {
                let p = a.window;
                let x = cx.tensor("input", p.input)?;
                let y = cx.tensor("output", p.output)?;
                cx.window(p.kernel, p.stride, p.pad)?;
                let area = p.kernel[0] as u32 * p.kernel[1] as u32;
                cx.range(
                    "pool area",
                    area as i64,
                    area <= MAX_POOL_AREA,
                    "at most 4096",
                )?;
                cx.pool_pad(p.kernel, p.pad)?;
                let expected = cx.window_out(x, p.kernel, p.stride, p.pad, x.shape[3])?;
                cx.shape("avgpool output", expected, dims(y.shape))?;
                cx.data("multipliers", a.mults, 4, area as u64)?;
                cx.shift(a.shift)?;
                for m in self.i32s(a.mults) {
                    cx.range("multiplier", *m as i64, *m >= 0, "≥ 0")?;
                }
            }
            Op::Add(a) => {
                let ta = cx.tensor("a", a.a)?;
                let tb = cx.tensor("b", a.b)?;
                let y = cx.tensor("output", a.output)?;
                cx.shape("add operand b", dims(ta.shape), dims(tb.shape))?;
                cx.shape("add output", dims(ta.shape), dims(y.shape))?;
                cx.range("mult_a", a.mult_a as i64, a.mult_a >= 0, "≥ 0")?;
                cx.range("mult_b", a.mult_b as i64, a.mult_b >= 0, "≥ 0")?;
                cx.shift(a.shift)?;
                cx.range(
                    "clamp",
                    a.clamp[0] as i64,
                    a.clamp[0] <= a.clamp[1],
                    "min ≤ max",
                )?;
                self.int16_writer_clamp(cx, a.output, a.clamp)?;
            }
            Op::Pad(p) => {
                let x = cx.tensor("input", p.input)?;
                let y = cx.tensor("output", p.output)?;
                let [t, b, l, r, cb, ca] = p.pads.map(|v| v as u64);
                let s = dims(x.shape);
                cx.shape(
                    "pad output",
                    [1, s[1] + t + b, s[2] + l + r, s[3] + cb + ca],
                    dims(y.shape),
                )?;
                cx.same_quant("padding must keep its input's scale and zero point", x, y)?;
                self.same_type(cx, p.input, p.output)?;
            }
            Op::Subsample(s) => {
                let x = cx.tensor("input", s.input)?;
                let y = cx.tensor("output", s.output)?;
                for st in s.step {
                    cx.range("step", st as i64, (1..=MAX_STRIDE).contains(&st), "1..=16")?;
                }
                let out = |dim: u32, start: u16, step: u16| {
                    (dim.saturating_sub(start as u32)).div_ceil(step as u32) as u64
                };
                let oh = out(x.shape[1], s.start[0], s.step[0]);
                let ow = out(x.shape[2], s.start[1], s.step[1]);
                cx.shape(
                    "subsample output",
                    [1, oh, ow, x.shape[3] as u64],
                    dims(y.shape),
                )?;
                cx.same_quant(
                    "subsampling must keep its input's scale and zero point",
                    x,
                    y,
                )?;
                self.same_type(cx, s.input, s.output)?;
            }
        }
        Ok(())
    }
}

/// One reference into the data section: its layer (the layer count for the graph's own
/// arrays), field name as in the checks above, and range.
#[derive(Clone, Copy)]
struct Span {
    layer: usize,
    field: &'static str,
    r: DataRef,
}

/// Every data reference of `meta`, in the order the writer lays them out: the input lookup
/// table, each layer's arrays, the self-test vectors.
fn data_refs<'m>(meta: &'m Metadata<'_>) -> impl Iterator<Item = Span> + 'm {
    let graph = meta.layers.len();
    let span = |layer, field, r| Span { layer, field, r };
    let layers = meta.layers.iter().enumerate().flat_map(move |(i, l)| {
        // Exhaustive, so an op gaining a `DataRef` is added here.
        match l.op {
            Op::Conv(c) => [
                Some(span(i, "weights", c.weights)),
                Some(span(i, "bias", c.bias)),
                Some(span(i, "multipliers", c.requant.mults)),
            ],
            Op::AvgPool(a) => [Some(span(i, "multipliers", a.mults)), None, None],
            Op::MaxPool(_) | Op::Add(_) | Op::Pad(_) | Op::Subsample(_) => [None; 3],
        }
        .into_iter()
        .flatten()
    });
    core::iter::once(span(graph, "input lut", meta.input.lut))
        .chain(layers)
        .chain([
            span(graph, "self-test input", meta.self_test.input),
            span(graph, "self-test output", meta.self_test.expected),
        ])
}

/// Whether two byte ranges share a byte (an empty range shares none). In u64: validated
/// ranges end within the data section, but this must not wrap for any input.
fn overlap(a: DataRef, b: DataRef) -> bool {
    let (a0, a1) = (a.offset as u64, a.offset as u64 + a.len as u64);
    let (b0, b1) = (b.offset as u64, b.offset as u64 + b.len as u64);
    a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1
}

/// The resize block's recipe, checked against the model input `[width, height]`: a known mode,
/// each side from the input's up to [`MAX_IMAGE_DIM`].
fn check_resize(mode: u32, size: [u32; 2], input: [u32; 2]) -> Result<Resize, FormatError> {
    let mode = ResizeMode::from_tag(mode).ok_or(FormatError::UnknownResizeMode { mode })?;
    let bad = |why| FormatError::BadResize { size, input, why };
    if size.contains(&0) {
        return Err(bad("has a zero side"));
    }
    if size.iter().any(|&d| d > MAX_IMAGE_DIM) {
        return Err(bad(
            "is larger than 65535 pixels a side, the largest image resq resizes",
        ));
    }
    if size[0] < input[0] || size[1] < input[1] {
        return Err(bad(
            "is smaller than the model input, so the crop would not fit",
        ));
    }
    Ok(Resize { mode, size })
}

fn postcard_why(e: postcard::Error) -> &'static str {
    use postcard::Error as E;
    match e {
        E::DeserializeUnexpectedEnd => "it ends early",
        E::DeserializeBadVarint => "bad integer encoding",
        E::DeserializeBadBool => "bad boolean",
        E::DeserializeBadUtf8 => "a name is not UTF-8",
        E::DeserializeBadEnum => "unknown op or enum value",
        E::DeserializeBadOption => "bad optional field",
        _ => "malformed postcard or a list longer than resq's fixed capacity",
    }
}
