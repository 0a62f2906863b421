//! The libtorch reference as a [`Runtime`]: the model executed eagerly by the torch backend.

use tch::{Device, Kind, Tensor};

pub use super::TorchOptions;
use super::{check_images, cuda_index, Runtime, RuntimeError};
use crate::tensors::{HostData, HostTensor, TensorMap};
use focus_models::model::selections::{self, Forcible};
use focus_models::model::{FocusDetr, ForwardOptions};
use focus_models::torch_backend::{TorchBackend, TT};
use focus_models::{FocusDetrConfig, WeightSchema, Weights};
use std::path::Path;

/// The reference runtime.
pub struct TorchRuntime {
    model: FocusDetr,
    backend: TorchBackend,
    opts: TorchOptions,
}

impl TorchRuntime {
    /// Loads `weights` for `cfg` onto `device`.
    pub fn new(
        cfg: FocusDetrConfig,
        weights: &Weights,
        device: Device,
        opts: TorchOptions,
    ) -> Result<Self, RuntimeError> {
        let schema = WeightSchema::new(&cfg);
        let backend = TorchBackend::new(weights, &schema, device)?;
        Ok(TorchRuntime {
            model: FocusDetr::new(cfg),
            backend,
            opts,
        })
    }

    /// Loads the weights file `weights` for `cfg` (read with `load`) onto `device` (`cpu`,
    /// `cuda` or `cuda:N`, which must be visible to libtorch), with `threads` CPU threads when
    /// given.
    pub fn open(
        cfg: FocusDetrConfig,
        weights: &Path,
        load: focus_models::LoadOptions,
        device: &str,
        threads: Option<usize>,
        opts: TorchOptions,
    ) -> Result<Self, RuntimeError> {
        let w = Weights::load_with(weights, &WeightSchema::new(&cfg), &cfg.name, load)?;
        let dev = match device {
            "cpu" => Device::Cpu,
            d => Device::Cuda(cuda_index(d)? as usize),
        };
        if let Device::Cuda(i) = dev {
            let n = tch::Cuda::device_count();
            if i as i64 >= n {
                return Err(RuntimeError::Options(format!("--device {device}: CUDA device {i} is not available ({n} CUDA device(s) visible to libtorch)")));
            }
        }
        if let Some(t) = threads {
            tch::set_num_threads(t as i32);
        }
        Self::new(cfg, &w, dev, opts)
    }
}

fn to_torch(t: &HostTensor, device: Device) -> Result<Tensor, tch::TchError> {
    let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let x = match &t.data {
        HostData::F32(v) => Tensor::f_from_slice(v)?,
        HostData::I64(v) => Tensor::f_from_slice(v)?,
        HostData::U8(v) => Tensor::f_from_slice(v)?,
    };
    x.f_reshape(shape)?.f_to_device(device)
}

fn to_host(t: &Tensor) -> Result<HostTensor, tch::TchError> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t
        .f_to_device(Device::Cpu)?
        .f_contiguous()?
        .f_flatten(0, -1)?;
    Ok(match t.kind() {
        Kind::Int64 | Kind::Int | Kind::Bool => {
            HostTensor::i64(shape, Vec::<i64>::try_from(flat.f_to_kind(Kind::Int64)?)?)
        }
        _ => HostTensor::f32(shape, Vec::<f32>::try_from(flat.f_to_kind(Kind::Float)?)?),
    })
}

impl Runtime for TorchRuntime {
    fn config(&self) -> Option<&FocusDetrConfig> {
        Some(&self.model.cfg)
    }

    fn name(&self) -> String {
        match self.backend.device() {
            Device::Cpu => "torch-cpu".into(),
            Device::Cuda(i) => format!("torch-cuda:{i}"),
            d => format!("torch-{d:?}"),
        }
    }

    fn run(&mut self, inputs: &TensorMap) -> Result<TensorMap, RuntimeError> {
        let images = check_images(inputs)?;
        let device = self.backend.device();
        let conv = |name: &str, e: tch::TchError| RuntimeError::Input {
            name: name.into(),
            message: e.to_string(),
        };
        let x = TT(to_torch(images, device).map_err(|e| conv("images", e))?);
        // Forced selections: whichever of the allowed ones the inputs hold, under their own
        // names or as `<name>_in`; the old proposal override requires its tensor.
        let mut force = std::collections::BTreeMap::new();
        let n = self.model.cfg.token_count(images.shape[2], images.shape[3]);
        for name in selections::names(&self.model.cfg) {
            if !self.opts.force.includes(&name) {
                continue;
            }
            let alt = focus_exporters::export::selection_input(&name);
            // The old proposal override read the selection's own name; forcing uses `_in`.
            let own_name = (self.opts.force == Forcible::Proposals).then(|| inputs.get(&name));
            let Some(t) = inputs.get(&alt).or(own_name.flatten()) else {
                if self.opts.force == Forcible::Proposals {
                    return Err(RuntimeError::Input {
                        name,
                        message: "missing; the proposal override needs int64 token indices [B, num_queries] in the input file".into(),
                    });
                }
                continue;
            };
            let want = [
                images.shape[0],
                super::selection_len(&self.model.cfg, &name, n),
            ];
            super::check_selection(&name, t, want)?;
            let tt = TT(to_torch(t, device).map_err(|e| conv(&name, e))?);
            force.insert(name, tt);
        }
        let orig_sizes = match inputs.get(focus_exporters::export::ORIG_SIZES_INPUT) {
            Some(t) => {
                let want = [images.shape[0], 2];
                if t.as_i64().is_none() || t.shape != want {
                    return Err(RuntimeError::Input {
                        name: focus_exporters::export::ORIG_SIZES_INPUT.into(),
                        message: format!(
                            "has shape {:?}; expected int64 {want:?} (height, width per image)",
                            t.shape
                        ),
                    });
                }
                Some(TT(to_torch(t, device).map_err(|e| conv("orig_sizes", e))?))
            }
            None => None,
        };
        let opts = ForwardOptions {
            debug: self.opts.debug,
            force,
            clamp_object_tokens: self.opts.clamp_object_tokens,
            orig_sizes,
        };
        let _guard = tch::no_grad_guard();
        let out = self.model.forward(&self.backend, &x, &opts)?;
        let mut map = TensorMap::new();
        let host = |t: &Tensor| {
            to_host(t).map_err(|e| {
                RuntimeError::Model(focus_models::backend::ModelError::Backend {
                    op: "to host",
                    message: e.to_string(),
                })
            })
        };
        map.insert("pred_logits".into(), host(&out.pred_logits)?);
        map.insert("pred_boxes".into(), host(&out.pred_boxes)?);
        map.insert("scores".into(), host(&out.scores)?);
        map.insert("labels".into(), host(&out.labels)?);
        map.insert("boxes_xyxy".into(), host(&out.boxes_xyxy)?);
        for (k, v) in &out.debug {
            map.insert(k.clone(), host(v)?);
        }
        Ok(map)
    }
}
