//! Where the inputs of `check` and `bench` come from: tensor files, a folder of photos, or a
//! COCO-format subset (annotation JSON + image folder). Photos are resized and normalised by the
//! official test pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::images;
use crate::tensors::{read_tensors, TensorMap};
use focus_models::config::PreprocessConfig;

/// Errors while gathering inputs.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The COCO annotation file is malformed or inconsistent with the images.
    #[error("{path}: {message}")]
    Coco {
        /// The annotation file.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The annotation file is not what the COCO evaluator needs.
    #[error(transparent)]
    Eval(#[from] focus_cocoeval::EvalError),
    /// Nothing to run on.
    #[error("no inputs: {0}")]
    Empty(String),
}

/// One input of a check or benchmark.
#[derive(Debug, Clone)]
pub struct InputItem {
    /// A short name for reports (file stem or COCO file name).
    pub name: String,
    /// Where it came from.
    pub source: PathBuf,
    /// The model inputs (`images`, and whatever else the file holds).
    pub tensors: TensorMap,
    /// COCO ground-truth boxes of this image (0 for other sources).
    pub annotations: usize,
    /// The COCO image record (for inputs of a COCO subset).
    pub coco: Option<CocoImage>,
}

/// Image file extensions `--images` picks up.
pub const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "JPG"];

fn photo_item(path: &Path, name: String, p: &PreprocessConfig) -> Result<InputItem, InputError> {
    let img = images::load_rgb(path).map_err(|e| InputError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let (_, t) = images::preprocess(&img, p);
    let mut tensors = TensorMap::new();
    tensors.insert("images".into(), t);
    Ok(InputItem {
        name,
        source: path.to_path_buf(),
        tensors,
        annotations: 0,
        coco: None,
    })
}

/// Tensor files (`images` [B, 3, H, W], normalised), each one input.
pub fn from_tensor_files(paths: &[PathBuf]) -> Result<Vec<InputItem>, InputError> {
    paths
        .iter()
        .map(|p| {
            let tensors = read_tensors(p).map_err(|e| InputError::Read {
                path: p.clone(),
                message: e.to_string(),
            })?;
            Ok(InputItem {
                name: p
                    .file_stem()
                    .map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into()),
                source: p.clone(),
                tensors,
                annotations: 0,
                coco: None,
            })
        })
        .collect()
}

/// The photos of a folder (by extension, sorted by name), at most `limit`.
pub fn from_image_dir(
    dir: &Path,
    limit: Option<usize>,
    p: &PreprocessConfig,
) -> Result<Vec<InputItem>, InputError> {
    let read_err = |e: std::io::Error| InputError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e == *x))
        })
        .collect();
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    if files.is_empty() {
        return Err(InputError::Empty(format!(
            "{} holds no {} files",
            dir.display(),
            IMAGE_EXTENSIONS.join("/")
        )));
    }
    files
        .iter()
        .map(|f| {
            let name = f
                .file_name()
                .map_or_else(String::new, |s| s.to_string_lossy().into());
            photo_item(f, name, p)
        })
        .collect()
}

/// The parts of a COCO annotation file that a check uses.
#[derive(Debug, Deserialize)]
struct CocoImages {
    images: Vec<CocoImage>,
}

/// A COCO image record.
#[derive(Debug, Clone, Deserialize)]
pub struct CocoImage {
    /// Image id.
    pub id: i64,
    /// File name inside the image folder.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A COCO subset: its images (in file order) and its ground truth as the evaluator reads it.
#[derive(Debug, Clone)]
pub struct CocoSubset {
    /// The images, in the order the annotation file lists them.
    pub images: Vec<CocoImage>,
    /// Boxes, categories and image ids for AP.
    pub truth: focus_cocoeval::GroundTruth,
}

/// Reads and validates a COCO annotation file against its image folder: every image exists
/// and has the recorded size, every annotation names a known image and category and lies inside
/// its image.
pub fn read_coco(ann: &Path, image_dir: &Path) -> Result<CocoSubset, InputError> {
    let bad = |message: String| InputError::Coco {
        path: ann.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(ann).map_err(|e| InputError::Read {
        path: ann.to_path_buf(),
        message: e.to_string(),
    })?;
    let de = &mut serde_json::Deserializer::from_str(&text);
    let coco: CocoImages = serde_path_to_error::deserialize(de)
        .map_err(|e| bad(format!("at `{}`: {}", e.path(), e.inner())))?;
    let truth = focus_cocoeval::parse_ground_truth(&text, &ann.display().to_string())?;
    let sizes: BTreeMap<i64, (u32, u32)> = coco
        .images
        .iter()
        .map(|i| (i.id, (i.width, i.height)))
        .collect();
    if sizes.len() != coco.images.len() {
        return Err(bad("duplicate image ids".into()));
    }
    for (n, a) in truth.annotations.iter().enumerate() {
        let Some(&(w, h)) = sizes.get(&a.image_id) else {
            return Err(bad(format!(
                "annotations[{n}]: image_id {} is not in `images`",
                a.image_id
            )));
        };
        if truth.category_ids.binary_search(&a.category_id).is_err() {
            return Err(bad(format!(
                "annotations[{n}]: category_id {} is not in `categories`",
                a.category_id
            )));
        }
        let [x, y, bw, bh] = a.bbox;
        if bw <= 0.0
            || bh <= 0.0
            || x < 0.0
            || y < 0.0
            || x + bw > f64::from(w)
            || y + bh > f64::from(h)
        {
            return Err(bad(format!(
                "annotations[{n}]: bbox {:?} is empty or outside its {w}×{h} image",
                a.bbox
            )));
        }
    }
    for i in &coco.images {
        let path = image_dir.join(&i.file_name);
        let (w, h) = image::image_dimensions(&path).map_err(|e| InputError::Read {
            path: path.clone(),
            message: format!("{e} (listed in {})", ann.display()),
        })?;
        if (w, h) != (i.width, i.height) {
            return Err(bad(format!(
                "image {} ({}) is {w}×{h} pixels, the annotation file says {}×{}",
                i.id, i.file_name, i.width, i.height
            )));
        }
    }
    Ok(CocoSubset {
        images: coco.images,
        truth,
    })
}

/// The first `limit` images of a COCO subset, preprocessed, and the subset's ground truth
/// restricted to them (what AP is computed over).
pub fn from_coco(
    ann: &Path,
    image_dir: &Path,
    limit: Option<usize>,
    p: &PreprocessConfig,
) -> Result<(Vec<InputItem>, focus_cocoeval::GroundTruth), InputError> {
    let coco = read_coco(ann, image_dir)?;
    let items: Vec<InputItem> = coco
        .images
        .iter()
        .take(limit.unwrap_or(usize::MAX))
        .map(|i| {
            let mut item = photo_item(&image_dir.join(&i.file_name), i.file_name.clone(), p)?;
            item.annotations = coco
                .truth
                .annotations
                .iter()
                .filter(|a| a.image_id == i.id)
                .count();
            item.coco = Some(i.clone());
            Ok(item)
        })
        .collect::<Result<_, InputError>>()?;
    if items.is_empty() {
        return Err(InputError::Empty(format!(
            "{} lists no images",
            ann.display()
        )));
    }
    let mut truth = coco.truth;
    truth.image_ids = focus_cocoeval::data::unique_sorted(
        items
            .iter()
            .filter_map(|i| i.coco.as_ref().map(|c| c.id))
            .collect(),
    );
    Ok((items, truth))
}
