//! `focus-synth-v1`: seeded synthetic weights with the exact names and shapes of the official
//! checkpoint (shared/design/synthetic_weights.md). Bit-exact: every value is a pure function of
//! (seed, key, element index), so tensors are filled in parallel chunks.

use rayon::prelude::*;

use crate::schema::{EntryKind, WeightSchema};

/// Name of the generator, recorded in the files it writes.
pub const GENERATOR: &str = "focus-synth-v1";

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SPLITMIX_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// Elements per parallel work item.
const CHUNK: usize = 1 << 16;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The i-th SplitMix64 output of the stream seeded with `s0`.
fn splitmix64_at(s0: u64, i: u64) -> u64 {
    let mut z = s0.wrapping_add(i.wrapping_add(1).wrapping_mul(SPLITMIX_GAMMA));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Matches `<prefix>.<digits>.<suffix>` exactly (rules 9 and 10).
fn is_indexed(key: &str, prefix: &str, suffix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(suffix))
        .and_then(|r| r.strip_suffix('.'))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The sampling range [lo, hi] of a key (first matching rule of the spec), or `None` when no rule
/// covers the key's rank.
pub fn range_for(key: &str, shape: &[usize]) -> Option<(f64, f64)> {
    let fan_in = || shape[1..].iter().product::<usize>() as f64;
    let sym = |b: f64| Some((-b, b));
    let backbone = key.starts_with("backbone.");
    if key.ends_with(".running_mean") {
        Some((-0.1, 0.1))
    } else if key.ends_with(".running_var") {
        Some((0.5, 1.5))
    } else if backbone && key.ends_with("conv3.norm.weight") {
        Some((0.1, 0.3))
    } else if backbone && key.ends_with(".norm.weight") {
        Some((0.5, 1.0))
    } else if key == "transformer.alpha" {
        Some((0.2, 0.8))
    } else if matches!(
        key,
        "transformer.level_embeds" | "transformer.tgt_embed.weight" | "label_enc.weight"
    ) {
        Some((-1.0, 1.0))
    } else if key.ends_with("sampling_offsets.bias") {
        Some((-2.0, 2.0))
    } else if key.ends_with("sampling_offsets.weight") && shape.len() >= 2 {
        sym(0.1 * (3.0 / fan_in()).sqrt())
    } else if is_indexed(key, "class_embed", "bias") {
        Some((-5.0, -4.0))
    } else if is_indexed(key, "bbox_embed", "layers.2.weight") {
        Some((-0.01, 0.01))
    } else if shape.len() == 1 && key.ends_with(".weight") {
        Some((0.8, 1.2))
    } else if shape.len() == 1 {
        Some((-0.1, 0.1))
    } else if shape.len() == 4 {
        sym((6.0 / fan_in()).sqrt())
    } else if shape.len() == 2 {
        sym((3.0 / fan_in()).sqrt())
    } else {
        None
    }
}

/// Fills one tensor: element i = round_f32(lo + (hi − lo)·u_i), u_i from the key's stream.
pub fn generate(key: &str, shape: &[usize], seed: u64) -> Option<Vec<f32>> {
    let (lo, hi) = range_for(key, shape)?;
    let s0 = seed ^ fnv1a64(key.as_bytes());
    let n: usize = shape.iter().product();
    let mut data = vec![0f32; n];
    let scale = 2f64.powi(-53);
    data.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| {
            let base = (c * CHUNK) as u64;
            for (j, v) in chunk.iter_mut().enumerate() {
                let u = (splitmix64_at(s0, base + j as u64) >> 11) as f64 * scale;
                *v = (lo + (hi - lo) * u) as f32;
            }
        });
    Some(data)
}

/// A generated tensor.
pub struct SynthTensor {
    /// Canonical checkpoint key.
    pub key: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// The schema holds a tensor of a rank the spec has no rule for.
    #[error("focus-synth-v1 has no rule for key `{key}` with shape {shape:?}")]
    NoRule {
        /// The key.
        key: String,
        /// Its shape.
        shape: Vec<usize>,
    },
}

/// Generates every canonical float tensor of `schema`, in state_dict order (index buffers,
/// whose values the model defines, are [`index_buffers`]).
pub fn synthesize(schema: &WeightSchema, seed: u64) -> Result<Vec<SynthTensor>, SynthError> {
    schema
        .float_entries()
        .map(|e| {
            let data = generate(&e.key, &e.shape, seed).ok_or_else(|| SynthError::NoRule {
                key: e.key.clone(),
                shape: e.shape.clone(),
            })?;
            Ok(SynthTensor {
                key: e.key.clone(),
                shape: e.shape.clone(),
                data,
            })
        })
        .collect()
}

/// The index buffers of `schema` (key, shape, the defined values), in state_dict order.
pub fn index_buffers(schema: &WeightSchema) -> Vec<(String, Vec<usize>, Vec<i64>)> {
    schema
        .canonical()
        .filter_map(|e| Some((e.key.clone(), e.shape.clone(), e.fixed_value()?)))
        .collect()
}

/// The generator's name for a schema: `focus-synth-v1`, whose rules cover float tensors, plus
/// its one extension when the schema has index buffers (they hold their defined values).
pub fn generator_name(schema: &WeightSchema) -> String {
    if schema.canonical().any(|e| e.kind == EntryKind::IndexBuffer) {
        format!("{GENERATOR} + defined index buffers")
    } else {
        GENERATOR.to_string()
    }
}

/// Writes the synthetic weights of `schema` (float tensors and index buffers) to `path`
/// atomically; returns the float tensors written.
pub fn write(
    path: &std::path::Path,
    schema: &WeightSchema,
    seed: u64,
    metadata: Option<(String, String)>,
) -> Result<Vec<SynthTensor>, WriteError> {
    use crate::weights::{write_safetensors, TensorValues};
    let tensors = synthesize(schema, seed)?;
    let index = index_buffers(schema);
    let floats = tensors.iter().map(|t| {
        (
            t.key.as_str(),
            t.shape.as_slice(),
            TensorValues::F32(&t.data),
        )
    });
    let ints = index
        .iter()
        .map(|(k, s, v)| (k.as_str(), s.as_slice(), TensorValues::I64(v)));
    write_safetensors(path, floats.chain(ints), metadata)?;
    Ok(tensors)
}

/// Errors of [`write`].
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// No generator rule for a tensor.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// Writing the file failed.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_key_rules() {
        assert!(is_indexed("class_embed.6.bias", "class_embed", "bias"));
        assert!(is_indexed("class_embed.12.bias", "class_embed", "bias"));
        assert!(!is_indexed(
            "transformer.decoder.class_embed.1.bias",
            "class_embed",
            "bias"
        ));
        assert!(!is_indexed("class_embed.x.bias", "class_embed", "bias"));
        assert!(!is_indexed("class_embed..bias", "class_embed", "bias"));
        assert!(is_indexed(
            "bbox_embed.3.layers.2.weight",
            "bbox_embed",
            "layers.2.weight"
        ));
        assert!(!is_indexed(
            "bbox_embed.3.layers.1.weight",
            "bbox_embed",
            "layers.2.weight"
        ));
    }

    #[test]
    fn fnv_reference_values() {
        // FNV-1a 64 published test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn splitmix_reference_value() {
        // SplitMix64 seeded with 0: first output is 0xe220a8397b1dcdaf.
        assert_eq!(splitmix64_at(0, 0), 0xe220a8397b1dcdaf);
    }
}
