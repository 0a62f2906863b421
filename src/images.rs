//! Image input and output: decoding (JPEG, PNG, WebP, with EXIF orientation), the official
//! test-time resize rule, and pixel normalisation into the model's `images` tensor and back.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader, Rgb, RgbImage};

use crate::tensors::HostTensor;
use focus_models::config::PreprocessConfig;

/// Errors of reading images.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or decoded.
    #[error("{path}: cannot read the image: {message}")]
    Read {
        /// The file.
        path: String,
        /// What the decoder said.
        message: String,
    },
}

/// The longest side of an image we decode, in pixels: 4× the longest side any preset resizes
/// to, and beyond what cameras write; larger files are refused before decoding.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// The most pixels of an image we decode (64 MP, 192 MB as RGB): a header may declare far more
/// than the file holds, and the decoder would allocate it first.
pub const MAX_IMAGE_PIXELS: u64 = 64 << 20;

/// Decodes an image as RGB with its EXIF orientation applied (as detectron2's `read_image`).
/// Its declared size is checked first ([`MAX_IMAGE_SIDE`], [`MAX_IMAGE_PIXELS`]).
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    let err = |e: &dyn std::fmt::Display| ImageError::Read {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let reader = ImageReader::open(path)
        .map_err(|e| err(&e))?
        .with_guessed_format()
        .map_err(|e| err(&e))?;
    let mut decoder = reader.into_decoder().map_err(|e| err(&e))?;
    let (w, h) = decoder.dimensions();
    if w.max(h) > MAX_IMAGE_SIDE || u64::from(w) * u64::from(h) > MAX_IMAGE_PIXELS {
        return Err(err(&format!(
            "its header declares {w}×{h} pixels; at most {MAX_IMAGE_SIDE} per side and {} MP \
             in all are decoded",
            MAX_IMAGE_PIXELS >> 20
        )));
    }
    let orientation = decoder.orientation().map_err(|e| err(&e))?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| err(&e))?;
    img.apply_orientation(orientation);
    Ok(img.to_rgb8())
}

/// detectron2 `ResizeShortestEdge` output size (H, W): shortest side to `min_size`, longest side
/// at most `max_size`, each side rounded with `int(x + 0.5)`.
pub fn resized_size(h: usize, w: usize, p: &PreprocessConfig) -> (usize, usize) {
    let (h, w) = (h as f64, w as f64);
    let size = p.min_size as f64;
    let scale = size / h.min(w);
    let (mut nh, mut nw) = if h < w {
        (size, scale * w)
    } else {
        (scale * h, size)
    };
    let longest = nh.max(nw);
    if longest > p.max_size as f64 {
        let s = p.max_size as f64 / longest;
        nh *= s;
        nw *= s;
    }
    ((nh + 0.5) as usize, (nw + 0.5) as usize)
}

/// Resizes to the official test size (bilinear with area-aware support when shrinking, like
/// PIL's BILINEAR; pixels are close to, not bit-identical with, PIL's) and normalises to the
/// model input [1, 3, H, W]: `(pixel − mean) / std` per RGB channel in float32.
pub fn preprocess(img: &RgbImage, p: &PreprocessConfig) -> (RgbImage, HostTensor) {
    let (h, w) = resized_size(img.height() as usize, img.width() as usize, p);
    let resized = if (h, w) == (img.height() as usize, img.width() as usize) {
        img.clone()
    } else {
        image::imageops::resize(img, w as u32, h as u32, FilterType::Triangle)
    };
    (resized.clone(), normalise(&resized, p))
}

/// `(pixel − mean) / std` per channel, laid out [1, 3, H, W].
pub fn normalise(img: &RgbImage, p: &PreprocessConfig) -> HostTensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut data = vec![0f32; 3 * h * w];
    for (x, y, px) in img.enumerate_pixels() {
        for c in 0..3 {
            data[c * h * w + y as usize * w + x as usize] =
                (f32::from(px.0[c]) - p.pixel_mean[c]) / p.pixel_std[c];
        }
    }
    HostTensor::f32(vec![1, 3, h, w], data)
}

/// Row `row` of a normalised `images` tensor [B, 3, H, W] back to RGB pixels (the inverse of
/// [`normalise`], rounded and clamped): the picture behind a tensor input. `None` when the
/// tensor is not float32 [B, 3, H, W] or has no such row.
pub fn denormalise(t: &HostTensor, p: &PreprocessConfig, row: usize) -> Option<RgbImage> {
    let [b, 3, h, w] = t.shape[..] else {
        return None;
    };
    if row >= b {
        return None;
    }
    let v = t.as_f32()?;
    let plane = h * w;
    let base = row * 3 * plane;
    Some(RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        Rgb(std::array::from_fn(|c| {
            let px = v[base + c * plane + i] * p.pixel_std[c] + p.pixel_mean[c];
            px.round().clamp(0.0, 255.0) as u8
        }))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn official_resize_rule() {
        let p = focus_models::FocusDetrConfig::default().preprocess;
        assert_eq!(resized_size(480, 640, &p), (800, 1067));
        assert_eq!(resized_size(640, 480, &p), (1067, 800));
        assert_eq!(resized_size(427, 640, &p), (800, 1199));
        assert_eq!(resized_size(500, 1500, &p), (444, 1333));
        assert_eq!(resized_size(800, 800, &p), (800, 800));
    }

    #[test]
    fn normalisation_matches_the_golden_formula() {
        let p = focus_models::FocusDetrConfig::default().preprocess;
        let img = RgbImage::from_pixel(2, 1, Rgb([255, 0, 128]));
        let t = normalise(&img, &p);
        let v = t.as_f32().unwrap();
        assert_eq!(t.shape, vec![1, 3, 1, 2]);
        assert_eq!(v[0], (255.0f32 - 123.675) / 58.395);
        assert_eq!(v[2], (0.0f32 - 116.28) / 57.12);
        assert_eq!(v[4], (128.0f32 - 103.53) / 57.375);
        assert_eq!(denormalise(&t, &p, 0), Some(img));
        assert_eq!(denormalise(&t, &p, 1), None);
    }
}
