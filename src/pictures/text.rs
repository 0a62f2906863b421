//! Text on pictures, from Noto Sans Mono glyphs pre-rasterised into the binary
//! (`noto-sans-mono-bitmap`): no font file and no system font is needed at run time.

use image::{Rgb, RgbImage};
use noto_sans_mono_bitmap::{get_raster, get_raster_width, FontWeight, RasterHeight};

use super::colour::mix;

/// The weight every picture uses: bold reads better over photos.
const WEIGHT: FontWeight = FontWeight::Bold;

/// Text sizes (line heights in pixels) the pictures use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextSize {
    /// 16 px.
    Small,
    /// 20 px.
    Medium,
    /// 24 px.
    Large,
    /// 32 px.
    Huge,
}

impl TextSize {
    fn raster(self) -> RasterHeight {
        match self {
            TextSize::Small => RasterHeight::Size16,
            TextSize::Medium => RasterHeight::Size20,
            TextSize::Large => RasterHeight::Size24,
            TextSize::Huge => RasterHeight::Size32,
        }
    }

    /// A size that reads well on a picture of this size (about 1/40 of its shorter side).
    pub fn for_picture(width: u32, height: u32) -> TextSize {
        match width.min(height) {
            0..=599 => TextSize::Small,
            600..=899 => TextSize::Medium,
            900..=1299 => TextSize::Large,
            _ => TextSize::Huge,
        }
    }

    /// The height of a line.
    pub fn line_height(self) -> u32 {
        self.raster() as u32
    }

    /// Width and height of `text` on one line.
    pub fn measure(self, text: &str) -> (u32, u32) {
        let w = get_raster_width(WEIGHT, self.raster()) as u32;
        (w * text.chars().count() as u32, self.line_height())
    }
}

/// Draws `text` with its top-left corner at (x, y) in `colour`, blending each glyph pixel by its
/// coverage (anti-aliased edges); pixels outside the picture are skipped. Characters the font
/// does not hold are drawn as `?`.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, size: TextSize, colour: Rgb<u8>) {
    let height = size.raster();
    let advance = get_raster_width(WEIGHT, height) as i64;
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    for (i, c) in text.chars().enumerate() {
        let Some(glyph) = get_raster(c, WEIGHT, height).or_else(|| get_raster('?', WEIGHT, height))
        else {
            continue;
        };
        let x0 = x + i as i64 * advance;
        for (dy, row) in glyph.raster().iter().enumerate() {
            let py = y + dy as i64;
            if !(0..h).contains(&py) {
                continue;
            }
            for (dx, &coverage) in row.iter().enumerate() {
                let px = x0 + dx as i64;
                if coverage == 0 || !(0..w).contains(&px) {
                    continue;
                }
                let p = img.get_pixel_mut(px as u32, py as u32);
                *p = mix(*p, colour, f32::from(coverage) / 255.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_drawn_inside_its_measured_box() {
        let mut img = RgbImage::from_pixel(200, 40, Rgb([0, 0, 0]));
        let size = TextSize::Medium;
        let (tw, th) = size.measure("person 0.98");
        draw_text(&mut img, 5, 5, "person 0.98", size, Rgb([255, 255, 255]));
        let mut inside = 0;
        for (x, y, p) in img.enumerate_pixels() {
            if p.0[0] > 0 {
                let within = (5..5 + tw).contains(&x) && (5..5 + th).contains(&y);
                assert!(within, "ink at ({x}, {y}) outside the measured box");
                inside += 1;
            }
        }
        assert!(inside > 100, "only {inside} pixels of text");
        // Unknown characters still draw something.
        let mut img = RgbImage::from_pixel(40, 40, Rgb([0, 0, 0]));
        draw_text(&mut img, 0, 0, "\u{1F600}", size, Rgb([255, 255, 255]));
        assert!(img.pixels().any(|p| p.0[0] > 0));
    }
}
