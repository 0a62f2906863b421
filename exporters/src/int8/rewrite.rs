//! The int8 graph rewrite: batch norms folded, layers and sites planned ([`prepare`]), and the
//! QDQ model written from calibrated ranges ([`quantize`]).

use std::collections::{BTreeMap, HashMap, HashSet};

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{AttributeProto, GraphProto, ModelProto, NodeProto};

use super::calib::{uint8_params, CalibrationMethod};
use super::consts::{f32_tensor, quantize_per_channel, tensor, Consts};
use super::plan::{
    path_matches, Int8Error, Int8Options, Int8Plan, Int8Summary, Layer, LayerOp, Ranges, Site,
    INT8_METADATA_KEY, KEEP_FP32,
};

/// A quantised layer's float weight: dims, values (MatMul: the evaluated right side [K, N]),
/// and a convolution's bias.
type LayerWeights = (Vec<i64>, Vec<f32>, Option<Vec<f32>>);

/// An int8 weight written: dims, the float values it came from, its base name.
type StoredWeight = (Vec<i64>, Vec<f32>, String);

fn graph_err(s: impl Into<String>) -> Int8Error {
    Int8Error::Graph(s.into())
}

/// The module path of a weight: its checkpoint name without the trailing `.weight` or
/// `_weight` (`…attn.in_proj_weight` → `…attn.in_proj`).
fn module_of(weight: &str) -> String {
    weight
        .strip_suffix(".weight")
        .or_else(|| weight.strip_suffix("_weight"))
        .unwrap_or(weight)
        .to_string()
}

/// The module path a node's name starts with (`backbone.res2/Conv_5` → `backbone.res2`).
fn scope_of(node: &str) -> &str {
    node.rsplit_once('/').map_or("", |(s, _)| s)
}

fn attr_f(n: &NodeProto, name: &str) -> Option<f32> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.f)
}

fn attr_i(n: &NodeProto, name: &str) -> Option<i64> {
    n.attribute.iter().find(|a| a.name == name).map(|a| a.i)
}

/// Readers of each value: (node index, input index).
fn consumers(g: &GraphProto) -> HashMap<String, Vec<(usize, usize)>> {
    let mut c: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
    for (k, n) in g.node.iter().enumerate() {
        for (i, x) in n.input.iter().enumerate() {
            c.entry(x.clone()).or_default().push((k, i));
        }
    }
    c
}

fn graph_outputs(g: &GraphProto) -> HashSet<String> {
    g.output.iter().map(|o| o.name.clone()).collect()
}

/// Folds each BatchNormalization that alone reads a convolution's output into that
/// convolution's weight and bias (detectron2's FrozenBN is an affine map per channel).
fn fold_batch_norms(g: &mut GraphProto) -> usize {
    let readers = consumers(g);
    let outputs = graph_outputs(g);
    let mut folds: Vec<(usize, usize, Vec<f32>, Vec<f32>)> = Vec::new();
    {
        let c = Consts::new(g);
        let producer: HashMap<&str, usize> = g
            .node
            .iter()
            .enumerate()
            .flat_map(|(k, n)| n.output.iter().map(move |o| (o.as_str(), k)))
            .collect();
        for (k, bn) in g.node.iter().enumerate() {
            if bn.op_type != "BatchNormalization" || bn.output.len() != 1 {
                continue;
            }
            let Some(&ci) = bn.input.first().and_then(|x| producer.get(x.as_str())) else {
                continue;
            };
            let conv = &g.node[ci];
            let x = &conv.output[0];
            if conv.op_type != "Conv"
                || outputs.contains(x)
                || readers.get(x).map_or(0, Vec::len) != 1
            {
                continue;
            }
            let (Some(w), Some(w_t)) = (c.f32s(&conv.input[1]), c.init(&conv.input[1])) else {
                continue;
            };
            let p: Option<Vec<Vec<f32>>> = bn.input[1..].iter().map(|n| c.f32s(n)).collect();
            let Some(p) = p.filter(|p| p.len() == 4) else {
                continue;
            };
            let o = w_t.dims.first().copied().unwrap_or(0) as usize;
            if p.iter().any(|v| v.len() != o) || o == 0 {
                continue;
            }
            let bias = match conv.input.get(2).filter(|b| !b.is_empty()) {
                Some(b) => match c.f32s(b) {
                    Some(b) if b.len() == o => b,
                    _ => continue,
                },
                None => vec![0.0; o],
            };
            let eps = attr_f(bn, "epsilon").unwrap_or(1e-5);
            let per = w.len() / o;
            let (mut w2, mut b2) = (w, vec![0.0f32; o]);
            for ch in 0..o {
                // In float64, so that the folded weights are the nearest float32 to the map.
                let s = p[0][ch] as f64 / (p[3][ch] as f64 + eps as f64).sqrt();
                for v in &mut w2[ch * per..(ch + 1) * per] {
                    *v = (*v as f64 * s) as f32;
                }
                b2[ch] = ((bias[ch] as f64 - p[2][ch] as f64) * s + p[1][ch] as f64) as f32;
            }
            folds.push((ci, k, w2, b2));
        }
    }
    let mut drop = HashSet::new();
    for (ci, k, w, b) in &folds {
        let module = module_of(&g.node[*ci].input[1]);
        let dims = g
            .initializer
            .iter()
            .find(|t| t.name == g.node[*ci].input[1])
            .map(|t| t.dims.clone())
            .unwrap_or_default();
        let (wn, bn) = (
            format!("{module}.weight.bn_folded"),
            format!("{module}.bias.bn_folded"),
        );
        g.initializer.push(f32_tensor(&wn, &dims, w));
        g.initializer.push(f32_tensor(&bn, &[b.len() as i64], b));
        let out = g.node[*k].output[0].clone();
        let conv = &mut g.node[*ci];
        conv.input.truncate(2);
        conv.input[1] = wn;
        conv.input.push(bn);
        conv.output[0] = out;
        drop.insert(*k);
    }
    let nodes = std::mem::take(&mut g.node);
    g.node = nodes
        .into_iter()
        .enumerate()
        .filter(|(k, _)| !drop.contains(k))
        .map(|(_, n)| n)
        .collect();
    remove_dead(g);
    folds.len()
}

/// Removes nodes none of whose outputs is read (repeatedly), then unread initializers and the
/// value infos of values that are gone.
fn remove_dead(g: &mut GraphProto) {
    let outputs = graph_outputs(g);
    loop {
        let read: HashSet<&str> = g
            .node
            .iter()
            .flat_map(|n| n.input.iter().map(String::as_str))
            .collect();
        let before = g.node.len();
        let keep: Vec<bool> = g
            .node
            .iter()
            .map(|n| {
                n.output
                    .iter()
                    .any(|o| read.contains(o.as_str()) || outputs.contains(o))
            })
            .collect();
        let mut it = keep.into_iter();
        g.node.retain(|_| it.next().unwrap_or(true));
        if g.node.len() == before {
            break;
        }
    }
    let read: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().cloned())
        .chain(outputs.iter().cloned())
        .collect();
    g.initializer.retain(|t| read.contains(&t.name));
    let made: HashSet<String> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().cloned())
        .chain(g.input.iter().map(|v| v.name.clone()))
        .collect();
    g.value_info.retain(|v| made.contains(&v.name));
}

/// Folds the batch norms of `m` (a float32 model holding its weights' data) and plans which
/// layers are quantised and which tensors get QuantizeLinear/DequantizeLinear.
pub fn prepare(mut m: ModelProto, opts: &Int8Options) -> Result<Int8Plan, Int8Error> {
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| graph_err("the model has no graph"))?;
    let folded_norms = fold_batch_norms(g);
    let g = &*g;
    let c = Consts::new(g);
    let readers = consumers(g);
    let outputs = graph_outputs(g);
    let mut layers = Vec::new();
    for n in &g.node {
        let (op, module) = match n.op_type.as_str() {
            "Conv" if attr_i(n, "group").unwrap_or(1) == 1 => {
                match n.input.get(1).and_then(|w| c.init(w)) {
                    Some(t) if t.dims.len() == 4 && t.data_type == DataType::FLOAT as i32 => {
                        let w = t.name.strip_suffix(".bn_folded").unwrap_or(&t.name);
                        (LayerOp::Conv, module_of(w))
                    }
                    _ => continue,
                }
            }
            "MatMul" => match n.input.get(1).and_then(|b| c.matrix(b)) {
                Some((mat, _)) => (LayerOp::MatMul, module_of(&mat.source)),
                None => continue,
            },
            _ => continue,
        };
        let kept = KEEP_FP32
            .iter()
            .find(|(p, _)| path_matches(&module, p))
            .map(|(p, why)| format!("{p}: {why}"))
            .or_else(|| {
                opts.keep
                    .iter()
                    .find(|p| path_matches(&module, p))
                    .map(|p| format!("{p}: --int8-keep"))
            });
        layers.push(Layer {
            module,
            node: n.name.clone(),
            op,
            kept,
        });
    }
    for p in &opts.keep {
        if !layers.iter().any(|l| path_matches(&l.module, p)) {
            return Err(Int8Error::UnknownKeep { pattern: p.clone() });
        }
    }
    // Sites, in graph order of the layers that need them.
    let by_name: HashMap<&str, &NodeProto> = g.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let producer: HashMap<&str, &NodeProto> = g
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let mut sites: Vec<Site> = Vec::new();
    let mut add = |tensor: &str, all: bool| match sites.iter_mut().find(|s| s.tensor == tensor) {
        Some(s) => s.all_consumers |= all,
        None => sites.push(Site {
            tensor: tensor.to_string(),
            all_consumers: all,
            same_as: None,
        }),
    };
    for l in layers.iter().filter(|l| l.kept.is_none()) {
        let n = by_name[l.node.as_str()];
        add(&n.input[0], l.op == LayerOp::Conv);
        if l.op == LayerOp::Conv {
            // QLinearConv needs its output quantised; through a Relu that alone reads it,
            // which ONNX Runtime then drops (a zero point of 0 clips at zero already).
            let out = &n.output[0];
            let r = readers.get(out).map(Vec::as_slice).unwrap_or(&[]);
            let relu = match r {
                [(k, 0)] if g.node[*k].op_type == "Relu" && !outputs.contains(out) => {
                    Some(g.node[*k].output[0].as_str())
                }
                _ => None,
            };
            add(relu.unwrap_or(out), true);
        }
    }
    // A MaxPool between two sites holds the same values: the same range.
    let names: HashSet<String> = sites.iter().map(|s| s.tensor.clone()).collect();
    for s in &mut sites {
        if let Some(p) = producer.get(s.tensor.as_str()) {
            if p.op_type == "MaxPool" && names.contains(&p.input[0]) {
                s.same_as = Some(p.input[0].clone());
            }
        }
    }
    Ok(Int8Plan {
        layers,
        sites,
        folded_norms,
        model: m,
    })
}

fn node(
    name: String,
    op: &str,
    inputs: Vec<String>,
    output: String,
    axis: Option<i64>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.name = name;
    n.op_type = op.to_string();
    n.input = inputs;
    n.output = vec![output];
    if let Some(a) = axis {
        let mut ap = AttributeProto::new();
        ap.name = "axis".into();
        ap.i = a;
        ap.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
        n.attribute.push(ap);
    }
    n
}

/// Writes the QDQ model of `plan` with the calibrated `ranges` (by observed tensor).
pub fn quantize(
    plan: Int8Plan,
    ranges: &Ranges,
    method: CalibrationMethod,
    images: usize,
) -> Result<(ModelProto, Int8Summary), Int8Error> {
    let Int8Plan {
        layers,
        sites,
        folded_norms,
        model: mut m,
    } = plan;
    let g = m
        .graph
        .as_mut()
        .ok_or_else(|| graph_err("the model has no graph"))?;
    // Activation parameters per site.
    let mut params: BTreeMap<&str, (f32, u8)> = BTreeMap::new();
    for s in &sites {
        let key = s.same_as.as_deref().unwrap_or(&s.tensor);
        let r = ranges
            .get(key)
            .ok_or_else(|| Int8Error::Uncalibrated(key.to_string()))?;
        params.insert(&s.tensor, uint8_params(*r));
    }
    let site_of: HashMap<&str, &Site> = sites.iter().map(|s| (s.tensor.as_str(), s)).collect();
    let quantised: HashMap<&str, &Layer> = layers
        .iter()
        .filter(|l| l.kept.is_none())
        .map(|l| (l.node.as_str(), l))
        .collect();
    // Weight data, read before the graph changes.
    let mut weights: HashMap<String, LayerWeights> = HashMap::new();
    {
        let c = Consts::new(g);
        for n in g
            .node
            .iter()
            .filter(|n| quantised.contains_key(n.name.as_str()))
        {
            let entry = if n.op_type == "Conv" {
                let t = c
                    .init(&n.input[1])
                    .ok_or_else(|| graph_err(format!("{}: no weight", n.name)))?;
                let w = c
                    .f32s(&t.name)
                    .ok_or_else(|| graph_err(format!("{}: weight", t.name)))?;
                let b = n
                    .input
                    .get(2)
                    .filter(|b| !b.is_empty())
                    .and_then(|b| c.f32s(b));
                (t.dims.clone(), w, b)
            } else {
                let (mat, _) = c
                    .matrix(&n.input[1])
                    .ok_or_else(|| graph_err(format!("{}: right side not constant", n.name)))?;
                (vec![mat.dims[0] as i64, mat.dims[1] as i64], mat.data, None)
            };
            weights.insert(n.name.clone(), entry);
        }
    }
    let zp_u8 = |name: &str, v: u8| tensor(name, DataType::UINT8, &[], vec![v]);
    let mut inits = Vec::new();
    for s in &sites {
        let (scale, zp) = params[s.tensor.as_str()];
        inits.push(f32_tensor(&format!("{}.scale", s.tensor), &[], &[scale]));
        inits.push(zp_u8(&format!("{}.zero_point", s.tensor), zp));
    }
    let quantize_node = |t: &str, scope: &str| {
        let name = if scope.is_empty() {
            format!("QuantizeLinear_{t}")
        } else {
            format!("{scope}/QuantizeLinear_{t}")
        };
        node(
            name,
            "QuantizeLinear",
            vec![t.into(), format!("{t}.scale"), format!("{t}.zero_point")],
            format!("{t}.quantized"),
            None,
        )
    };
    let mut out_nodes = Vec::with_capacity(g.node.len() * 2);
    let inputs: HashSet<&str> = g.input.iter().map(|v| v.name.as_str()).collect();
    for s in sites.iter().filter(|s| inputs.contains(s.tensor.as_str())) {
        out_nodes.push(quantize_node(&s.tensor, "inputs"));
    }
    let (mut n_conv, mut n_mm) = (0, 0);
    let mut used_bias: HashSet<String> = HashSet::new();
    let mut stored: HashMap<String, Vec<StoredWeight>> = HashMap::new();
    for mut n in std::mem::take(&mut g.node) {
        let scope = scope_of(&n.name).to_string();
        let tail = n.name.rsplit('/').next().unwrap_or(&n.name).to_string();
        let layer = quantised.get(n.name.as_str()).copied();
        let x0 = n.input.first().cloned().unwrap_or_default();
        // Inputs read through DequantizeLinear.
        let mut done: HashMap<String, String> = HashMap::new();
        for i in 0..n.input.len() {
            let x = n.input[i].clone();
            let Some(s) = site_of.get(x.as_str()) else {
                continue;
            };
            if !(s.all_consumers || (layer.is_some() && i == 0)) {
                continue;
            }
            let dq = match done.get(&x) {
                Some(d) => d.clone(),
                None => {
                    let out = format!("{x}.dequantized.{tail}");
                    out_nodes.push(node(
                        format!("{scope}/DequantizeLinear_{x}_{tail}"),
                        "DequantizeLinear",
                        vec![
                            format!("{x}.quantized"),
                            format!("{x}.scale"),
                            format!("{x}.zero_point"),
                        ],
                        out.clone(),
                        None,
                    ));
                    done.insert(x.clone(), out.clone());
                    out
                }
            };
            n.input[i] = dq;
        }
        if let Some(l) = layer {
            let (dims, w, b) = &weights[&n.name];
            let module = &l.module;
            let conv = l.op == LayerOp::Conv;
            let channels = if conv { dims[0] } else { dims[1] } as usize;
            let (q, scales) = quantize_per_channel(w, channels, conv);
            let axis = if conv { 0 } else { 1 };
            // One int8 copy per distinct weight of a module: the attention's in_proj gives
            // three (its query, key and value slices), a weight read twice gives one.
            let copies = stored.entry(module.clone()).or_default();
            let base = match copies.iter().find(|(d, v, _)| d == dims && v == w) {
                Some((_, _, name)) => name.clone(),
                None => {
                    let name = match copies.len() {
                        0 => format!("{module}.weight"),
                        k => format!("{module}.weight.{k}"),
                    };
                    inits.push(tensor(
                        &format!("{name}.quantized"),
                        DataType::INT8,
                        dims,
                        q.iter().map(|&v| v as u8).collect(),
                    ));
                    inits.push(f32_tensor(
                        &format!("{name}.scale"),
                        &[channels as i64],
                        &scales,
                    ));
                    inits.push(tensor(
                        &format!("{name}.zero_point"),
                        DataType::INT8,
                        &[channels as i64],
                        vec![0; channels],
                    ));
                    copies.push((dims.clone(), w.clone(), name.clone()));
                    name
                }
            };
            let wd = format!("{base}.dequantized.{tail}");
            out_nodes.push(node(
                format!("{scope}/DequantizeLinear_{base}_{tail}"),
                "DequantizeLinear",
                vec![
                    format!("{base}.quantized"),
                    format!("{base}.scale"),
                    format!("{base}.zero_point"),
                ],
                wd.clone(),
                Some(axis),
            ));
            n.input[1] = wd;
            if let Some(b) = b {
                // int32 bias at the scale of input × weight, as QLinearConv takes it.
                let sx = params
                    .get(x0.as_str())
                    .map(|p| p.0)
                    .ok_or_else(|| graph_err(format!("{}: input not quantised", n.name)))?;
                let bs: Vec<f32> = scales.iter().map(|s| s * sx).collect();
                let bq: Vec<u8> = b
                    .iter()
                    .zip(&bs)
                    .flat_map(|(v, s)| {
                        ((*v as f64 / *s as f64)
                            .round()
                            .clamp(i32::MIN as f64, i32::MAX as f64)
                            as i32)
                            .to_le_bytes()
                    })
                    .collect();
                // Per node: the bias's scale is its input's times the weight's.
                let bb = if used_bias.insert(format!("{module}.bias")) {
                    format!("{module}.bias")
                } else {
                    format!("{module}.bias.{tail}")
                };
                inits.push(tensor(
                    &format!("{bb}.quantized"),
                    DataType::INT32,
                    &[channels as i64],
                    bq,
                ));
                inits.push(f32_tensor(&format!("{bb}.scale"), &[channels as i64], &bs));
                inits.push(tensor(
                    &format!("{bb}.zero_point"),
                    DataType::INT32,
                    &[channels as i64],
                    vec![0; channels * 4],
                ));
                let bd = format!("{bb}.dequantized.{tail}");
                out_nodes.push(node(
                    format!("{scope}/DequantizeLinear_{bb}_{tail}"),
                    "DequantizeLinear",
                    vec![
                        format!("{bb}.quantized"),
                        format!("{bb}.scale"),
                        format!("{bb}.zero_point"),
                    ],
                    bd.clone(),
                    Some(0),
                ));
                n.input[2] = bd;
            }
            if conv {
                n_conv += 1;
            } else {
                n_mm += 1;
            }
        }
        let made: Vec<String> = n.output.clone();
        out_nodes.push(n);
        for o in made.iter().filter(|o| site_of.contains_key(o.as_str())) {
            out_nodes.push(quantize_node(o, &scope));
        }
    }
    g.node = out_nodes;
    g.initializer.extend(inits);
    remove_dead(g);
    let summary = Int8Summary {
        method: method.name(),
        images,
        conv: n_conv,
        matmul: n_mm,
        kept: layers
            .iter()
            .filter_map(|l| l.kept.as_ref().map(|k| (l.module.clone(), k.clone())))
            .collect(),
        sites: sites.len(),
        folded_norms,
    };
    let record = serde_json::json!({
        "method": summary.method,
        "images": images,
        "conv": n_conv,
        "matmul": n_mm,
        "sites": summary.sites,
        "kept": layers.iter().filter(|l| l.kept.is_some()).map(|l| l.module.clone()).collect::<Vec<_>>(),
    });
    let mut e = onnx_protobuf::StringStringEntryProto::new();
    e.key = INT8_METADATA_KEY.into();
    e.value = record.to_string();
    m.metadata_props.push(e);
    Ok((m, summary))
}
