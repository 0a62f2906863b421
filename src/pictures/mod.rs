//! Pictures for people: colours (per class, heat maps), rectangles, labelled detection boxes that
//! read on light and dark photos, and the composite sheet that sets titled panels side by side.
//! What is drawn where on the photo is decided by [`tokens`] (feature-level grids) and by the
//! callers (`explain`, `predict --draw`, `check --html`).

mod colour;
pub mod text;
pub mod tokens;

pub use colour::mix;

use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use text::{draw_text, TextSize};

/// Errors of making pictures.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// A model output needed for a picture is missing or has the wrong type or shape.
    #[error("output `{name}`: {message}")]
    Output {
        /// The output's name.
        name: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The feature-level grids do not fit the input size.
    #[error(
        "the feature levels {levels:?} are not a stride grid of the {input_h}×{input_w} input"
    )]
    Grid {
        /// (rows, columns) per level.
        levels: Vec<(usize, usize)>,
        /// Input height.
        input_h: usize,
        /// Input width.
        input_w: usize,
    },
    /// A picture could not be encoded or written.
    #[error("{path}: cannot write the picture: {message}")]
    Write {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// A colour from hue, saturation and value (each in [0, 1]).
fn hsv(h: f64, s: f64, v: f64) -> Rgb<u8> {
    let h6 = h.rem_euclid(1.0) * 6.0;
    let c = v * s;
    let x = c * (1.0 - (h6 % 2.0 - 1.0).abs());
    let (r, g, b) = match h6 as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let q = |u: f64| ((u + m) * 255.0).round() as u8;
    Rgb([q(r), q(g), q(b)])
}

/// A class's colour: hues spread by the golden ratio, so neighbouring class ids look different;
/// saturated and bright, for boxes that carry a dark halo on light photos.
pub fn class_colour(label: i64) -> Rgb<u8> {
    const GOLDEN: f64 = 0.618_033_988_749_895;
    hsv((label as f64 * GOLDEN + 0.05).fract(), 0.85, 0.95)
}

/// Black or white, whichever contrasts more with `bg` (relative luminance, sRGB).
pub fn text_colour_on(bg: Rgb<u8>) -> Rgb<u8> {
    let lin = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let y = 0.2126 * lin(bg.0[0]) + 0.7152 * lin(bg.0[1]) + 0.0722 * lin(bg.0[2]);
    // Contrast with black (y + 0.05) / 0.05 against white 1.05 / (y + 0.05): equal at y ≈ 0.179.
    if y > 0.179 {
        Rgb([0, 0, 0])
    } else {
        Rgb([255, 255, 255])
    }
}

/// The heat-map colour (inferno: black, purple, orange, pale yellow) of `t` in [0, 1].
pub fn heat(t: f64) -> Rgb<u8> {
    let c = colorous::INFERNO.eval_continuous(if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    });
    Rgb([c.r, c.g, c.b])
}

/// The photo darkened and desaturated to `level` of its brightness, the backdrop on which
/// selected tokens are shown at full colour.
pub fn dimmed(photo: &RgbImage, level: f32) -> RgbImage {
    let mut out = photo.clone();
    for p in out.pixels_mut() {
        let grey =
            (0.299 * f32::from(p.0[0]) + 0.587 * f32::from(p.0[1]) + 0.114 * f32::from(p.0[2]))
                * level;
        *p = Rgb([grey.round() as u8; 3]);
    }
    out
}

/// Fills [x0, x1) × [y0, y1), clipped to the picture.
pub fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, c);
        }
    }
}

/// Draws the outline of [x0, x1) × [y0, y1), `t` pixels thick on the inside, clipped.
pub fn stroke_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, t: i64, c: Rgb<u8>) {
    let t = t
        .max(1)
        .min(((x1 - x0).max(1) + 1) / 2)
        .min(((y1 - y0).max(1) + 1) / 2);
    fill_rect(img, x0, y0, x1, y0 + t, c);
    fill_rect(img, x0, y1 - t, x1, y1, c);
    fill_rect(img, x0, y0, x0 + t, y1, c);
    fill_rect(img, x1 - t, y0, x1, y1, c);
}

/// One detection to draw: a box in picture pixels (x1, y1, x2, y2), its class and its caption.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// The box.
    pub xyxy: [f32; 4],
    /// Class index (contiguous, 0-based), which picks the colour.
    pub label: i64,
    /// The caption, e.g. `person 0.93`.
    pub caption: String,
}

/// Where a caption went: its tab [x0, x1) × [y0, y1) and the colours used.
#[derive(Debug, Clone, Copy)]
pub struct CaptionPlacement {
    /// The tab, clipped to the picture.
    pub rect: [i64; 4],
    /// The tab's fill (the class colour).
    pub fill: Rgb<u8>,
    /// The text's colour.
    pub ink: Rgb<u8>,
}

/// Draws labelled boxes, lowest score first so the best ones end on top (callers pass them best
/// first): each box in its class colour between two dark halo lines (visible on light and dark
/// photos), its caption on a tab of the class colour above the box, or inside its top edge where
/// the picture has no room above. Returns where each caption went, in `dets` order.
pub fn draw_detections(img: &mut RgbImage, dets: &[Labelled]) -> Vec<CaptionPlacement> {
    let size = TextSize::for_picture(img.width(), img.height());
    let t = i64::from((img.width().min(img.height()) / 320).max(2));
    let halo = Rgb([16, 16, 16]);
    let mut placements = vec![None; dets.len()];
    for (i, d) in dets.iter().enumerate().rev() {
        let fill = class_colour(d.label);
        let ink = text_colour_on(fill);
        let [x0, y0, x1, y1] = d.xyxy.map(|v| v.round() as i64);
        stroke_rect(img, x0 - 1, y0 - 1, x1 + 2, y1 + 2, 1, halo);
        stroke_rect(img, x0, y0, x1 + 1, y1 + 1, t, fill);
        stroke_rect(img, x0 + t, y0 + t, x1 + 1 - t, y1 + 1 - t, 1, halo);
        let (tw, th) = size.measure(&d.caption);
        let (tw, th) = (i64::from(tw) + 6, i64::from(th) + 2);
        let top = if y0 - th >= 0 { y0 - th } else { y0 };
        let left = x0.clamp(0, (i64::from(img.width()) - tw).max(0));
        fill_rect(img, left, top, left + tw, top + th, fill);
        draw_text(img, left + 3, top + 1, &d.caption, size, ink);
        let clip = |v: i64, hi: u32| v.clamp(0, i64::from(hi));
        placements[i] = Some(CaptionPlacement {
            rect: [
                clip(left, img.width()),
                clip(top, img.height()),
                clip(left + tw, img.width()),
                clip(top + th, img.height()),
            ],
            fill,
            ink,
        });
    }
    placements.into_iter().flatten().collect()
}

/// Writes a title on a dark band along the picture's top edge.
pub fn title(img: &mut RgbImage, text: &str) {
    let size = TextSize::for_picture(img.width(), img.height());
    let (tw, th) = size.measure(text);
    fill_rect(
        img,
        0,
        0,
        i64::from(tw) + 12,
        i64::from(th) + 8,
        Rgb([20, 20, 20]),
    );
    draw_text(img, 6, 4, text, size, Rgb([255, 255, 255]));
}

/// One panel of a composite sheet.
pub struct Panel<'a> {
    /// The title printed above it.
    pub title: String,
    /// The picture.
    pub image: &'a RgbImage,
}

/// Width of one panel on a sheet.
pub const PANEL_WIDTH: u32 = 360;
/// Gap between panels and around the sheet.
const GAP: u32 = 10;

/// The panel geometry of a sheet: where each panel's picture lands, [x, y, w, h].
pub fn sheet_layout(rows: &[Vec<(u32, u32)>]) -> (u32, u32, Vec<Vec<[u32; 4]>>) {
    let title_h = TextSize::Small.line_height() + 6;
    let cols = rows.iter().map(Vec::len).max().unwrap_or(1).max(1) as u32;
    let width = GAP + cols * (PANEL_WIDTH + GAP);
    let mut y = GAP;
    let mut out = Vec::new();
    for row in rows {
        let mut placed = Vec::new();
        let mut row_h = 0;
        for (i, &(w, h)) in row.iter().enumerate() {
            let ph = ((f64::from(h) * f64::from(PANEL_WIDTH) / f64::from(w.max(1))).round() as u32)
                .max(1);
            placed.push([
                GAP + i as u32 * (PANEL_WIDTH + GAP),
                y + title_h,
                PANEL_WIDTH,
                ph,
            ]);
            row_h = row_h.max(ph);
        }
        y += title_h + row_h + GAP;
        out.push(placed);
    }
    (width, y, out)
}

/// Sets the panels side by side, a row per inner list, each scaled to [`PANEL_WIDTH`] with its
/// title above it, on a dark background.
pub fn sheet(rows: &[Vec<Panel<'_>>]) -> RgbImage {
    let sizes: Vec<Vec<(u32, u32)>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|p| (p.image.width(), p.image.height()))
                .collect()
        })
        .collect();
    let (w, h, places) = sheet_layout(&sizes);
    let mut out = RgbImage::from_pixel(w, h, Rgb([32, 32, 32]));
    for (row, placed) in rows.iter().zip(&places) {
        for (panel, &[x, y, pw, ph]) in row.iter().zip(placed) {
            let small = image::imageops::resize(panel.image, pw, ph, FilterType::Triangle);
            image::imageops::replace(&mut out, &small, i64::from(x), i64::from(y));
            let th = i64::from(TextSize::Small.line_height() + 6);
            // Titles longer than the panel are cut with ".." so neighbours stay readable.
            let fits = (PANEL_WIDTH / TextSize::Small.measure("m").0.max(1)) as usize;
            let title: String = if panel.title.chars().count() > fits {
                panel
                    .title
                    .chars()
                    .take(fits.saturating_sub(2))
                    .chain("..".chars())
                    .collect()
            } else {
                panel.title.clone()
            };
            draw_text(
                &mut out,
                i64::from(x),
                i64::from(y) - th + 2,
                &title,
                TextSize::Small,
                Rgb([235, 235, 235]),
            );
        }
    }
    out
}

/// Encodes a picture in the format its extension names and writes it atomically.
pub fn save(img: &RgbImage, path: &std::path::Path) -> Result<(), PictureError> {
    let err = |e: &dyn std::fmt::Display| PictureError::Write {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let format = image::ImageFormat::from_path(path).map_err(|e| err(&e))?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, format).map_err(|e| err(&e))?;
    focus_models::weights::write_atomically(path, bytes.get_ref()).map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captions_are_drawn_inside_their_tabs_on_light_and_dark_photos() {
        for bg in [Rgb([250, 250, 250]), Rgb([5, 5, 5])] {
            let mut img = RgbImage::from_pixel(640, 480, bg);
            let dets = [
                Labelled {
                    xyxy: [100.0, 120.0, 300.0, 400.0],
                    label: 0,
                    caption: "person 0.93".into(),
                },
                Labelled {
                    xyxy: [0.0, 0.0, 200.0, 100.0],
                    label: 17,
                    caption: "dog 0.51".into(),
                },
            ];
            let placed = draw_detections(&mut img, &dets);
            assert_eq!(placed.len(), 2);
            // Room above the first box: the tab sits on its top edge; none above the second:
            // inside.
            assert_eq!(placed[0].rect[3], 120);
            assert_eq!(placed[1].rect[1], 0);
            for p in &placed {
                let [x0, y0, x1, y1] = p.rect;
                let (mut ink, mut fill) = (0, 0);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let px = *img.get_pixel(x as u32, y as u32);
                        // Closer to the text colour than to the tab's: ink (anti-aliased).
                        let d = |c: Rgb<u8>| -> i32 {
                            (0..3)
                                .map(|i| (i32::from(px.0[i]) - i32::from(c.0[i])).abs())
                                .sum()
                        };
                        ink += usize::from(d(p.ink) < d(p.fill));
                        fill += usize::from(px == p.fill);
                    }
                }
                assert!(
                    ink > 50 && fill > ink,
                    "ink {ink}, fill {fill} in {:?}",
                    p.rect
                );
                assert_ne!(p.fill, p.ink);
            }
            // The box's edge carries both the class colour and the dark halo.
            assert_eq!(*img.get_pixel(200, 400), class_colour(0));
            assert_eq!(*img.get_pixel(200, 401), Rgb([16, 16, 16]));
        }
    }

    #[test]
    fn class_colours_differ_and_text_contrasts() {
        let colours: std::collections::HashSet<_> = (0..80).map(class_colour).collect();
        assert_eq!(colours.len(), 80);
        assert_eq!(text_colour_on(Rgb([255, 255, 0])), Rgb([0, 0, 0]));
        assert_eq!(text_colour_on(Rgb([0, 0, 160])), Rgb([255, 255, 255]));
    }

    #[test]
    fn sheet_panels_keep_their_aspect() {
        let a = RgbImage::from_pixel(640, 480, Rgb([255, 0, 0]));
        let b = RgbImage::from_pixel(480, 640, Rgb([0, 255, 0]));
        let s = sheet(&[vec![
            Panel {
                title: "a".into(),
                image: &a,
            },
            Panel {
                title: "b".into(),
                image: &b,
            },
        ]]);
        let (_, _, places) = sheet_layout(&[vec![(640, 480), (480, 640)]]);
        let [x, y, w, h] = places[0][0];
        assert_eq!((w, h), (PANEL_WIDTH, 270));
        assert_eq!(*s.get_pixel(x + w / 2, y + h / 2), Rgb([255, 0, 0]));
        let [x, y, w, h] = places[0][1];
        assert_eq!((w, h), (PANEL_WIDTH, 480));
        assert_eq!(*s.get_pixel(x + w / 2, y + h / 2), Rgb([0, 255, 0]));
        assert_eq!(s.height(), y + h + GAP);
    }
}
