//! Constant data of a graph for the int8 rewrite: initializers read as numbers, a matrix
//! product's right side evaluated when it is a weight behind Transpose or Slice, and the
//! tensors the rewrite writes.

use std::collections::{HashMap, HashSet};

use crate::graph::f32_values;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::type_proto;
use onnx_protobuf::{GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto};

/// Initializers and node producers of a graph, by name.
pub struct Consts<'a> {
    inits: HashMap<&'a str, &'a TensorProto>,
    producer: HashMap<&'a str, &'a NodeProto>,
}

/// A row-major float32 matrix.
pub struct Matrix {
    /// [rows, cols].
    pub dims: [usize; 2],
    /// Values.
    pub data: Vec<f32>,
    /// The initializer it was read from.
    pub source: String,
}

impl<'a> Consts<'a> {
    /// Indexes `g`.
    pub fn new(g: &'a GraphProto) -> Self {
        Consts {
            inits: g.initializer.iter().map(|t| (t.name.as_str(), t)).collect(),
            producer: g
                .node
                .iter()
                .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
                .collect(),
        }
    }

    /// The initializer `name`.
    pub fn init(&self, name: &str) -> Option<&'a TensorProto> {
        self.inits.get(name).copied()
    }

    /// The float32 values of initializer `name`.
    pub fn f32s(&self, name: &str) -> Option<Vec<f32>> {
        self.init(name).and_then(f32_values)
    }

    /// The int64 values of `name`: an initializer or a Constant node's value.
    fn i64s(&self, name: &str) -> Option<Vec<i64>> {
        let t = match self.init(name) {
            Some(t) => t,
            None => {
                let n = self.producer.get(name)?;
                if n.op_type != "Constant" {
                    return None;
                }
                n.attribute.iter().find(|a| a.name == "value")?.t.as_ref()?
            }
        };
        if t.data_type != DataType::INT64 as i32 {
            return None;
        }
        Some(if t.raw_data.is_empty() {
            t.int64_data.clone()
        } else {
            t.raw_data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect()
        })
    }

    /// `name` as a constant float32 matrix: a 2-D initializer, or one behind a chain of
    /// Transpose and single-axis Slice nodes (the linear layers' `Transpose(weight)`, the
    /// attention's `Slice(in_proj_weight)`). Returns it and the nodes it passed through.
    pub fn matrix(&self, name: &str) -> Option<(Matrix, Vec<String>)> {
        if let Some(t) = self.init(name) {
            let data = f32_values(t)?;
            let [r, c] = <[i64; 2]>::try_from(t.dims.as_slice()).ok()?;
            return Some((
                Matrix {
                    dims: [r as usize, c as usize],
                    data,
                    source: t.name.clone(),
                },
                Vec::new(),
            ));
        }
        let n = self.producer.get(name)?;
        let (m, mut through) = self.matrix(n.input.first()?)?;
        let out = match n.op_type.as_str() {
            "Transpose" => {
                let perm = n.attribute.iter().find(|a| a.name == "perm");
                if perm.is_some_and(|p| p.ints != [1, 0]) {
                    return None;
                }
                let [r, c] = m.dims;
                let mut data = vec![0.0; r * c];
                for i in 0..r {
                    for j in 0..c {
                        data[j * r + i] = m.data[i * c + j];
                    }
                }
                Matrix {
                    dims: [c, r],
                    data,
                    source: m.source,
                }
            }
            "Slice" => {
                let one = |i: usize| -> Option<i64> {
                    let v = self.i64s(n.input.get(i)?)?;
                    (v.len() == 1).then(|| v[0])
                };
                let (start, end) = (one(1)?, one(2)?);
                let axis = if n.input.len() > 3 && !n.input[3].is_empty() {
                    one(3)?
                } else {
                    0
                };
                if n.input.len() > 4 && !n.input[4].is_empty() && one(4)? != 1 {
                    return None;
                }
                let axis = usize::try_from(if axis < 0 { axis + 2 } else { axis }).ok()?;
                let len = *m.dims.get(axis)? as i64;
                let clamp = |v: i64| (if v < 0 { v + len } else { v }).clamp(0, len) as usize;
                let (a, b) = (clamp(start), clamp(end));
                if a >= b {
                    return None;
                }
                let [r, c] = m.dims;
                let (dims, data) = if axis == 0 {
                    ([b - a, c], m.data[a * c..b * c].to_vec())
                } else {
                    let data = (0..r)
                        .flat_map(|i| m.data[i * c + a..i * c + b].iter().copied())
                        .collect();
                    ([r, b - a], data)
                };
                Matrix {
                    dims,
                    data,
                    source: m.source,
                }
            }
            _ => return None,
        };
        through.push(n.name.clone());
        Some((out, through))
    }
}

/// A tensor of `data_type` with raw little-endian data.
pub fn tensor(name: &str, data_type: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.to_string();
    t.data_type = data_type as i32;
    t.dims = dims.to_vec();
    t.raw_data = raw;
    t
}

/// A float32 tensor.
pub fn f32_tensor(name: &str, dims: &[i64], v: &[f32]) -> TensorProto {
    let raw = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    tensor(name, DataType::FLOAT, dims, raw)
}

/// Symmetric int8 per output channel: `w` holds `channels` runs of equal length when
/// `channel_major` (Conv [O, I, kh, kw]), or rows whose every column is a channel otherwise
/// (MatMul's right side [K, N]). Returns the int8 values and one scale per channel.
pub fn quantize_per_channel(
    w: &[f32],
    channels: usize,
    channel_major: bool,
) -> (Vec<i8>, Vec<f32>) {
    let per = w.len() / channels.max(1);
    let at = |c: usize, k: usize| {
        if channel_major {
            c * per + k
        } else {
            k * channels + c
        }
    };
    let scales: Vec<f32> = (0..channels)
        .map(|c| {
            let m = (0..per).map(|k| w[at(c, k)].abs()).fold(0.0f32, f32::max);
            // An all-zero channel: any scale is exact.
            if m > 0.0 {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let mut q = vec![0i8; w.len()];
    for (c, s) in scales.iter().enumerate() {
        for k in 0..per {
            let i = at(c, k);
            q[i] = (w[i] / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    (q, scales)
}

/// `m` with `names` added as float32 outputs of unknown shape (unless already inputs or
/// outputs).
pub(crate) fn with_outputs(m: &ModelProto, names: &[&str]) -> ModelProto {
    let mut m = m.clone();
    if let Some(g) = m.graph.as_mut() {
        let have: HashSet<String> = g
            .output
            .iter()
            .chain(&g.input)
            .map(|v| v.name.clone())
            .collect();
        for n in names.iter().filter(|n| !have.contains(**n)) {
            let mut t = type_proto::Tensor::new();
            t.elem_type = DataType::FLOAT as i32;
            let mut ty = TypeProto::new();
            ty.set_tensor_type(t);
            let mut v = ValueInfoProto::new();
            v.name = n.to_string();
            v.type_ = protobuf::MessageField::some(ty);
            g.output.push(v);
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_channel_quantisation_is_symmetric_and_exact_at_the_extremes() {
        // Two channels (rows) of a channel-major tensor.
        let w = [1.0, -0.5, 0.25, 0.0, 0.0, 0.0];
        let (q, s) = quantize_per_channel(&w, 2, true);
        assert_eq!(q[..3], [127, -64, 32]);
        assert_eq!(s, vec![1.0 / 127.0, 1.0]);
        // The same values as columns of [K=3, N=2].
        let w = [2.0, 0.0, -1.0, 0.0, 0.5, 0.0];
        let (q, s) = quantize_per_channel(&w, 2, false);
        assert_eq!((q[0], q[2], q[4]), (127, -64, 32));
        assert_eq!(s[0], 2.0 / 127.0);
    }
}
