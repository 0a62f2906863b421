//! The pictures of `explain` and `predict --draw` for one image: foreground scores per feature
//! level, the tokens each encoder layer keeps, the object tokens, the two-stage proposals and the
//! labelled detections, each at the photo's size, and a composite sheet of them all. They are
//! drawn from a diagnostic run's outputs (the torch reference with `--debug`, or a `--debug`
//! export on ONNX Runtime or tract), named as in the goldens.

use image::RgbImage;

use crate::pictures::tokens::{level_colour, TokenGrid};
use crate::pictures::{self, draw_detections, title, Labelled, Panel, PictureError};
use crate::tensors::{HostTensor, TensorMap};
use focus_models::model::selections;
use focus_models::postprocess::{clip_and_drop, Detections, COCO_IDS, COCO_NAMES};
use focus_models::FocusDetrConfig;

/// One picture: its file stem, title and pixels.
pub struct Picture {
    /// File stem (`fg_P3`, `kept_layer0`, ...).
    pub file: String,
    /// What it shows.
    pub title: String,
    /// The picture, at the photo's size.
    pub image: RgbImage,
}

/// Every picture of one image and the sheet that shows them side by side.
pub struct Explanation {
    /// The pictures, in sheet order.
    pub pictures: Vec<Picture>,
    /// The composite sheet.
    pub sheet: RgbImage,
}

fn output<'a>(out: &'a TensorMap, name: &str, hint: &str) -> Result<&'a HostTensor, PictureError> {
    out.get(name).ok_or_else(|| PictureError::Output {
        name: name.into(),
        message: format!("missing: {hint}"),
    })
}

fn floats<'a>(out: &'a TensorMap, name: &str, hint: &str) -> Result<&'a [f32], PictureError> {
    output(out, name, hint)?
        .as_f32()
        .ok_or_else(|| PictureError::Output {
            name: name.into(),
            message: "expected float32".into(),
        })
}

fn ints<'a>(out: &'a TensorMap, name: &str, hint: &str) -> Result<&'a [i64], PictureError> {
    output(out, name, hint)?
        .as_i64()
        .ok_or_else(|| PictureError::Output {
            name: name.into(),
            message: "expected int64".into(),
        })
}

/// Where to get the diagnostic outputs from.
const DEBUG_HINT: &str = "run the torch reference with --debug, or export the model with --debug";
/// Where to get the post-processed outputs from.
const POSTPROCESS_HINT: &str = "export the model without --no-postprocess";

/// The class name of a contiguous label (`?` outside COCO's 80).
pub fn class_name(label: i64) -> &'static str {
    usize::try_from(label)
        .ok()
        .and_then(|l| COCO_NAMES.get(l))
        .copied()
        .unwrap_or("?")
}

/// The COCO category id of a contiguous label (0 outside COCO's 80).
pub fn category_id(label: i64) -> u32 {
    usize::try_from(label)
        .ok()
        .and_then(|l| COCO_IDS.get(l))
        .copied()
        .unwrap_or(0)
}

/// The detections of a run's first image as the photo shows them: the post-processed `scores`,
/// `labels` and `boxes_xyxy` (input pixels) rescaled to the photo, clipped and emptied boxes
/// dropped (detectron2's rule), then those scoring at least `min_score`, at most `top`.
pub fn photo_detections(
    out: &TensorMap,
    input_hw: (usize, usize),
    photo_hw: (usize, usize),
    min_score: f32,
    top: usize,
) -> Result<Detections, PictureError> {
    // Batch row 0: [K] for one image, [B, K] for a batch.
    let k = output(out, "scores", POSTPROCESS_HINT)?
        .shape
        .last()
        .copied()
        .unwrap_or(0);
    let first = |v: &'_ [f32], n: usize| v[..n.min(v.len())].to_vec();
    let scores = first(floats(out, "scores", POSTPROCESS_HINT)?, k);
    let labels = ints(out, "labels", POSTPROCESS_HINT)?;
    let labels = labels[..k.min(labels.len())].to_vec();
    let boxes: Vec<[f32; 4]> = first(floats(out, "boxes_xyxy", POSTPROCESS_HINT)?, 4 * k)
        .chunks_exact(4)
        .map(|c| [c[0], c[1], c[2], c[3]])
        .collect();
    if scores.len() != labels.len() || scores.len() != boxes.len() {
        return Err(PictureError::Output {
            name: "scores".into(),
            message: format!(
                "{} scores, {} labels and {} boxes: expected one of each per detection",
                scores.len(),
                labels.len(),
                boxes.len()
            ),
        });
    }
    let hw = |(h, w): (usize, usize)| (h as f32, w as f32);
    let all = clip_and_drop(&scores, &labels, &boxes, hw(input_hw), hw(photo_hw));
    let keep: Vec<usize> = (0..all.scores.len())
        .filter(|&i| all.scores[i] >= min_score)
        .take(top)
        .collect();
    Ok(Detections {
        scores: keep.iter().map(|&i| all.scores[i]).collect(),
        labels: keep.iter().map(|&i| all.labels[i]).collect(),
        boxes: keep.iter().map(|&i| all.boxes[i]).collect(),
    })
}

/// Detections with their captions (`name score`).
pub fn labelled(dets: &Detections) -> Vec<Labelled> {
    (0..dets.scores.len())
        .map(|i| Labelled {
            xyxy: dets.boxes[i],
            label: dets.labels[i],
            caption: format!("{} {:.2}", class_name(dets.labels[i]), dets.scores[i]),
        })
        .collect()
}

/// The photo with its detections drawn and labelled.
pub fn detections_picture(photo: &RgbImage, dets: &Detections) -> RgbImage {
    let mut img = photo.clone();
    draw_detections(&mut img, &labelled(dets));
    img
}

/// The token grid of a one-image run (`spatial_shapes` against the input and photo sizes).
pub fn token_grid(
    out: &TensorMap,
    input_hw: (usize, usize),
    photo_hw: (usize, usize),
) -> Result<TokenGrid, PictureError> {
    let shapes: Vec<(usize, usize)> = ints(out, "spatial_shapes", DEBUG_HINT)?
        .chunks_exact(2)
        .map(|c| (c[0].max(0) as usize, c[1].max(0) as usize))
        .collect();
    TokenGrid::new(&shapes, input_hw, photo_hw)
}

/// Checks that a selection holds one image's indices and returns them.
fn selection<'a>(out: &'a TensorMap, name: &str) -> Result<&'a [i64], PictureError> {
    let t = output(out, name, DEBUG_HINT)?;
    if t.shape.first() != Some(&1) {
        return Err(PictureError::Output {
            name: name.into(),
            message: format!("shape {:?}: expected one image's selection [1, k]", t.shape),
        });
    }
    ints(out, name, DEBUG_HINT)
}

/// Draws the two-stage proposals (`init_reference`, normalised cx, cy, w, h) on the dimmed photo,
/// coloured by rank: the best bright yellow, the last dark purple; the best drawn last, on top.
fn proposals_picture(photo: &RgbImage, refs: &[f32]) -> RgbImage {
    let mut img = pictures::dimmed(photo, 0.5);
    let (w, h) = (photo.width() as f32, photo.height() as f32);
    let n = refs.len() / 4;
    for (rank, b) in refs.chunks_exact(4).enumerate().rev() {
        let c = pictures::heat(1.0 - 0.8 * rank as f64 / n.max(1) as f64);
        let (cx, cy, bw, bh) = (b[0] * w, b[1] * h, b[2] * w, b[3] * h);
        pictures::stroke_rect(
            &mut img,
            (cx - bw / 2.0).round() as i64,
            (cy - bh / 2.0).round() as i64,
            (cx + bw / 2.0).round() as i64 + 1,
            (cy + bh / 2.0).round() as i64 + 1,
            1,
            c,
        );
    }
    img
}

/// All pictures of one image. `photo` is the image at its original size and orientation,
/// `input_hw` the model input it was resized to, `out` a diagnostic run's outputs on it (one
/// image), `min_score` and `top` choose the detections shown.
pub fn explain(
    photo: &RgbImage,
    input_hw: (usize, usize),
    out: &TensorMap,
    cfg: &FocusDetrConfig,
    min_score: f32,
    top: usize,
) -> Result<Explanation, PictureError> {
    let photo_hw = (photo.height() as usize, photo.width() as usize);
    let grid = token_grid(out, input_hw, photo_hw)?;
    let fg = floats(out, "fg_logits", DEBUG_HINT)?;
    if fg.len() != grid.tokens() {
        return Err(PictureError::Output {
            name: "fg_logits".into(),
            message: format!(
                "{} values: expected one per token of one image ({})",
                fg.len(),
                grid.tokens()
            ),
        });
    }
    let fg_prob: Vec<f32> = fg.iter().map(|&v| 1.0 / (1.0 + (-v).exp())).collect();
    let mut pictures = Vec::new();
    // The files carry their titles; the sheet prints them above untitled panels.
    let mut plain = Vec::new();
    let mut push = |file: String, label: String, image: RgbImage| {
        let mut titled = image.clone();
        title(&mut titled, &label);
        plain.push(image);
        pictures.push(Picture {
            file,
            title: label,
            image: titled,
        });
    };
    for (l, level) in grid.levels.iter().enumerate() {
        // Each level on the whole colour scale: trained and synthetic weights alike put a
        // level's probabilities in a narrow band, where a fixed 0..1 scale shows one colour.
        let (lo, hi) = grid.level_range(l, &fg_prob);
        push(
            format!("fg_{}", level.name()),
            format!(
                "foreground {} (stride {}): {lo:.3}..{hi:.3}",
                level.name(),
                level.stride,
            ),
            grid.value_map(photo, l, &fg_prob, (lo, hi)),
        );
    }
    let layers = cfg.focus.cascade.len();
    for l in 0..layers {
        let kept = selection(out, &selections::encoder_tokens(l))?;
        push(
            format!("kept_layer{l}"),
            format!(
                "encoder layer {l}: {} of {} tokens kept",
                kept.len(),
                grid.tokens()
            ),
            grid.selection_map(photo, kept),
        );
    }
    for l in 0..layers {
        let objects = selection(out, &selections::object_tokens(l))?;
        push(
            format!("objects_layer{l}"),
            format!("encoder layer {l}: {} object tokens", objects.len()),
            grid.selection_map(photo, objects),
        );
    }
    let refs = floats(out, "init_reference", DEBUG_HINT)?;
    push(
        "proposals".into(),
        format!("{} two-stage proposals (bright: best)", refs.len() / 4),
        proposals_picture(photo, refs),
    );
    let dets = photo_detections(out, input_hw, photo_hw, min_score, top)?;
    push(
        "detections".into(),
        format!("{} detections, score >= {min_score}", dets.scores.len()),
        detections_picture(photo, &dets),
    );
    let panel = |i: usize| Panel {
        title: pictures[i].title.clone(),
        image: &plain[i],
    };
    let levels = grid.levels.len();
    let photo_panel = Panel {
        title: format!(
            "photo {}x{} (input {}x{})",
            photo_hw.1, photo_hw.0, input_hw.1, input_hw.0
        ),
        image: photo,
    };
    let mut rows = vec![std::iter::once(photo_panel)
        .chain((0..levels).map(panel))
        .collect::<Vec<_>>()];
    rows.push((levels..levels + layers).map(panel).collect());
    rows.push((levels + layers..levels + 2 * layers).map(panel).collect());
    rows.push((levels + 2 * layers..pictures.len()).map(panel).collect());
    let body = pictures::sheet(&rows);
    // A footer: the level colours of the token pictures, each name in its colour.
    let size = pictures::text::TextSize::Small;
    let footer = size.line_height() + 12;
    let mut sheet = RgbImage::from_pixel(
        body.width(),
        body.height() + footer,
        image::Rgb([32, 32, 32]),
    );
    image::imageops::replace(&mut sheet, &body, 0, 0);
    let y = i64::from(body.height() + 4);
    let lead = "kept and object tokens, tinted by level:";
    pictures::text::draw_text(&mut sheet, 10, y, lead, size, image::Rgb([220, 220, 220]));
    let mut x = 10 + i64::from(size.measure(lead).0) + 12;
    for (l, level) in grid.levels.iter().enumerate() {
        let name = level.name();
        pictures::text::draw_text(&mut sheet, x, y, &name, size, level_colour(l));
        x += i64::from(size.measure(&name).0) + 12;
    }
    Ok(Explanation { pictures, sheet })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pictures::{sheet_layout, PANEL_WIDTH};
    use image::Rgb;

    /// A 256×320 input resized from a 128×160 photo that is black but for one bright 8×8 square,
    /// which is exactly the photo area of token (row 4, col 6) of P4 (stride 16: input pixels
    /// x 96..112, y 64..80). Outputs that score and select only that token.
    fn one_bright_square() -> (RgbImage, TensorMap, [u32; 4]) {
        let square = [48, 32, 56, 40];
        let photo = RgbImage::from_fn(160, 128, |x, y| {
            let inside = (square[0]..square[2]).contains(&x) && (square[1]..square[3]).contains(&y);
            Rgb(if inside { [255; 3] } else { [0; 3] })
        });
        let shapes = [(32, 40), (16, 20), (8, 10), (4, 5)];
        let n: usize = shapes.iter().map(|(h, w)| h * w).sum();
        let token = 32 * 40 + 4 * 20 + 6;
        let mut out = TensorMap::new();
        out.insert(
            "spatial_shapes".into(),
            HostTensor::i64(
                vec![4, 2],
                shapes
                    .iter()
                    .flat_map(|&(h, w)| [h as i64, w as i64])
                    .collect(),
            ),
        );
        let mut fg = vec![-20.0f32; n];
        fg[token] = 20.0;
        out.insert("fg_logits".into(), HostTensor::f32(vec![1, n], fg));
        for l in 0..6 {
            for name in [selections::encoder_tokens(l), selections::object_tokens(l)] {
                out.insert(name, HostTensor::i64(vec![1, 1], vec![token as i64]));
            }
        }
        out.insert(
            "init_reference".into(),
            HostTensor::f32(
                vec![1, 1, 4],
                vec![52.0 / 160.0, 36.0 / 128.0, 8.0 / 160.0, 8.0 / 128.0],
            ),
        );
        out.insert("scores".into(), HostTensor::f32(vec![1], vec![0.9]));
        out.insert("labels".into(), HostTensor::i64(vec![1], vec![0]));
        out.insert(
            "boxes_xyxy".into(),
            HostTensor::f32(vec![1, 4], vec![96.0, 64.0, 112.0, 80.0]),
        );
        (photo, out, square)
    }

    fn bright(p: &Rgb<u8>) -> bool {
        p.0.iter().map(|&c| u32::from(c)).sum::<u32>() > 300
    }

    #[test]
    fn a_tokens_square_covers_the_pixels_it_was_computed_from() {
        let (photo, out, [x0, y0, x1, y1]) = one_bright_square();
        let cfg = FocusDetrConfig::default();
        let ex = explain(&photo, (256, 320), &out, &cfg, 0.5, 10).unwrap();
        let names: Vec<&str> = ex.pictures.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(
            &names[..5],
            ["fg_P3", "fg_P4", "fg_P5", "fg_P6", "kept_layer0"]
        );
        assert_eq!(names.len(), 18);
        let inside = |x: u32, y: u32| (x0..x1).contains(&x) && (y0..y1).contains(&y);
        // Below the title band, the P4 heat map and the kept-token map light up exactly the
        // bright square.
        for file in ["fg_P4", "kept_layer0", "objects_layer5"] {
            let pic = &ex.pictures.iter().find(|p| p.file == file).unwrap().image;
            assert_eq!((pic.width(), pic.height()), (160, 128));
            for (x, y, p) in pic.enumerate_pixels().filter(|(_, y, _)| *y >= 26) {
                assert_eq!(bright(p), inside(x, y), "{file} at ({x}, {y}): {p:?}");
            }
        }
        // On the sheet, the P4 panel (first row, third: after the photo and P3) is the picture
        // scaled by PANEL_WIDTH / 160; its bright area is the scaled square (±1 px of filtering).
        let (_, _, places) = sheet_layout(&[vec![(160, 128); 5]]);
        let [px, py, pw, _] = places[0][2];
        assert_eq!(pw, PANEL_WIDTH);
        let s = f64::from(PANEL_WIDTH) / 160.0;
        let scaled = |v: u32| f64::from(v) * s;
        for y in 60..((128.0 * s) as u32) {
            for x in 0..pw {
                let (fx, fy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                let margin = |lo: f64, hi: f64, v: f64| (v - lo).min(hi - v);
                let m = margin(scaled(x0), scaled(x1), fx).min(margin(scaled(y0), scaled(y1), fy));
                if m.abs() < 1.5 {
                    continue;
                }
                let p = ex.sheet.get_pixel(px + x, py + y);
                assert_eq!(bright(p), m > 0.0, "sheet panel pixel ({x}, {y}): {p:?}");
            }
        }
    }

    #[test]
    fn missing_diagnostic_outputs_are_named() {
        let (photo, mut out, _) = one_bright_square();
        out.remove("enc_topk_idx_3");
        let cfg = FocusDetrConfig::default();
        let err = explain(&photo, (256, 320), &out, &cfg, 0.5, 10)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("enc_topk_idx_3") && err.contains("--debug"),
            "{err}"
        );
    }
}
