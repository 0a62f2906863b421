//! Where each encoder token sits on the photo. Tokens are flattened level by level (finest
//! first), row-major inside a level; a level of stride s has ceil(H/s) × ceil(W/s) tokens over
//! the H×W model input, and the input is the photo resized. A photo pixel belongs to the token
//! whose input cell holds the pixel's centre: the square the token was computed from.

use image::{Rgb, RgbImage};

use super::{dimmed, fill_rect, heat, mix, stroke_rect, PictureError};

/// One feature level's grid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// Token rows.
    pub rows: usize,
    /// Token columns.
    pub cols: usize,
    /// Index of the level's first token in the flattened sequence.
    pub start: usize,
    /// Input pixels per token side.
    pub stride: usize,
}

impl Level {
    /// `P<log2 stride>`, the feature pyramid's name of the level (P3 has stride 8).
    pub fn name(&self) -> String {
        format!("P{}", self.stride.trailing_zeros())
    }
}

/// The feature levels over one photo.
#[derive(Debug, Clone)]
pub struct TokenGrid {
    /// Finest first, as the tokens are flattened.
    pub levels: Vec<Level>,
    /// Model input (height, width).
    pub input: (usize, usize),
    /// Photo (height, width).
    pub photo: (usize, usize),
    /// Per level, the token column of each photo pixel column.
    col_of_x: Vec<Vec<usize>>,
    /// Per level, the token row of each photo pixel row.
    row_of_y: Vec<Vec<usize>>,
}

/// Input cell index of photo pixel `p` (centre) along one axis: ⌊(p + ½)·input/photo / stride⌋.
fn cell(p: usize, photo: usize, input: usize, stride: usize, cells: usize) -> usize {
    let x = (p as f64 + 0.5) * input as f64 / photo as f64;
    ((x / stride as f64) as usize).min(cells - 1)
}

/// First photo pixel whose centre falls at or after input coordinate `x`.
fn first_pixel(x: usize, photo: usize, input: usize) -> usize {
    let p = (x as f64 * photo as f64 / input as f64 - 0.5).ceil();
    (p.max(0.0) as usize).min(photo)
}

impl TokenGrid {
    /// The grid of `shapes` ((rows, cols) per level, finest first) over an input of `input`
    /// (h, w) resized from a photo of `photo` (h, w); each level's stride is the power of two
    /// that gives its shape.
    pub fn new(
        shapes: &[(usize, usize)],
        input: (usize, usize),
        photo: (usize, usize),
    ) -> Result<TokenGrid, PictureError> {
        let bad = || PictureError::Grid {
            levels: shapes.to_vec(),
            input_h: input.0,
            input_w: input.1,
        };
        if shapes.is_empty() || input.0 == 0 || input.1 == 0 || photo.0 == 0 || photo.1 == 0 {
            return Err(bad());
        }
        let mut levels = Vec::new();
        let mut start = 0;
        for &(rows, cols) in shapes {
            let stride = (0..12)
                .map(|e| 1usize << e)
                .find(|s| input.0.div_ceil(*s) == rows && input.1.div_ceil(*s) == cols)
                .ok_or_else(bad)?;
            levels.push(Level {
                rows,
                cols,
                start,
                stride,
            });
            start += rows * cols;
        }
        let col_of_x = levels
            .iter()
            .map(|l| {
                (0..photo.1)
                    .map(|x| cell(x, photo.1, input.1, l.stride, l.cols))
                    .collect()
            })
            .collect();
        let row_of_y = levels
            .iter()
            .map(|l| {
                (0..photo.0)
                    .map(|y| cell(y, photo.0, input.0, l.stride, l.rows))
                    .collect()
            })
            .collect();
        Ok(TokenGrid {
            levels,
            input,
            photo,
            col_of_x,
            row_of_y,
        })
    }

    /// Tokens over all levels.
    pub fn tokens(&self) -> usize {
        self.levels.last().map_or(0, |l| l.start + l.rows * l.cols)
    }

    /// The token of `level` that photo pixel (x, y) belongs to.
    pub fn token_at(&self, level: usize, x: u32, y: u32) -> usize {
        let l = &self.levels[level];
        l.start + self.row_of_y[level][y as usize] * l.cols + self.col_of_x[level][x as usize]
    }

    /// The level of a token and the photo pixels it covers, [x0, y0, x1, y1) (`None` for an
    /// index outside the grid).
    pub fn photo_rect(&self, token: usize) -> Option<(usize, [u32; 4])> {
        let level = self
            .levels
            .iter()
            .position(|l| (l.start..l.start + l.rows * l.cols).contains(&token))?;
        let l = &self.levels[level];
        let (r, c) = ((token - l.start) / l.cols, (token - l.start) % l.cols);
        let (ph, pw) = self.photo;
        let (ih, iw) = self.input;
        // The last cell runs to the photo's edge (its input cell may reach past the input).
        let edge = |i: usize, cells: usize, photo: usize, input: usize| {
            if i + 1 >= cells {
                photo
            } else {
                first_pixel((i + 1) * l.stride, photo, input)
            }
        };
        let x0 = first_pixel(c * l.stride, pw, iw);
        let y0 = first_pixel(r * l.stride, ph, ih);
        let x1 = edge(c, l.cols, pw, iw);
        let y1 = edge(r, l.rows, ph, ih);
        Some((level, [x0 as u32, y0 as u32, x1 as u32, y1 as u32]))
    }

    /// The smallest and largest of `values` (over all tokens) among one level's tokens.
    pub fn level_range(&self, level: usize, values: &[f32]) -> (f32, f32) {
        let l = &self.levels[level];
        values
            .get(l.start..l.start + l.rows * l.cols)
            .unwrap_or(&[])
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// A per-token value of one level (`values` over all tokens) as a heat map blended over the
    /// photo, `range` (low, high) spread over the whole colour scale.
    pub fn value_map(
        &self,
        photo: &RgbImage,
        level: usize,
        values: &[f32],
        range: (f32, f32),
    ) -> RgbImage {
        let (lo, hi) = range;
        let span = f64::from(hi - lo);
        let mut out = photo.clone();
        for (x, y, p) in out.enumerate_pixels_mut() {
            let v = values
                .get(self.token_at(level, x, y))
                .copied()
                .unwrap_or(lo);
            let t = if span > 0.0 {
                f64::from(v - lo) / span
            } else {
                0.5
            };
            *p = mix(*p, heat(t), 0.7);
        }
        out
    }

    /// A token selection over the dimmed photo: each pixel covered by a selected token of some
    /// level shows the photo tinted with the finest such level's colour ([`level_colour`]).
    pub fn selection_map(&self, photo: &RgbImage, selected: &[i64]) -> RgbImage {
        let mut chosen = vec![false; self.tokens()];
        for &t in selected {
            if let Some(c) = usize::try_from(t).ok().and_then(|t| chosen.get_mut(t)) {
                *c = true;
            }
        }
        let mut out = dimmed(photo, 0.35);
        for (x, y, p) in out.enumerate_pixels_mut() {
            if let Some(level) = (0..self.levels.len()).find(|&l| chosen[self.token_at(l, x, y)]) {
                *p = mix(*photo.get_pixel(x, y), level_colour(level), 0.45);
            }
        }
        out
    }

    /// Paints tokens (e.g. the ones where two selections differ) solid in `colour`, each with
    /// a black edge, so even a P3 token stays visible on a scaled-down picture.
    pub fn mark_tokens(&self, img: &mut RgbImage, tokens: &[i64], colour: Rgb<u8>) {
        for &tok in tokens {
            let rect = usize::try_from(tok).ok().and_then(|t| self.photo_rect(t));
            if let Some((_, [x0, y0, x1, y1])) = rect {
                let (x0, y0, x1, y1) = (x0.into(), y0.into(), x1.into(), y1.into());
                fill_rect(img, x0, y0, x1, y1, colour);
                stroke_rect(img, x0, y0, x1, y1, 1, Rgb([0, 0, 0]));
            }
        }
    }
}

/// The tint of a feature level in selection pictures (finest: cyan, then green, amber, magenta).
pub fn level_colour(level: usize) -> Rgb<u8> {
    const COLOURS: [Rgb<u8>; 4] = [
        Rgb([0, 220, 255]),
        Rgb([80, 255, 80]),
        Rgb([255, 190, 0]),
        Rgb([255, 60, 200]),
    ];
    COLOURS[level % COLOURS.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(h: usize, w: usize) -> Vec<(usize, usize)> {
        [8, 16, 32, 64]
            .iter()
            .map(|s| (h.div_ceil(*s), w.div_ceil(*s)))
            .collect()
    }

    #[test]
    fn strides_follow_from_the_level_shapes() {
        let g = TokenGrid::new(&shapes(800, 1067), (800, 1067), (480, 640)).unwrap();
        let strides: Vec<usize> = g.levels.iter().map(|l| l.stride).collect();
        assert_eq!(strides, [8, 16, 32, 64]);
        assert_eq!(g.levels[3].name(), "P6");
        assert_eq!(g.tokens(), 100 * 134 + 50 * 67 + 25 * 34 + 13 * 17);
        assert!(TokenGrid::new(&[(10, 10)], (800, 1067), (480, 640)).is_err());
    }

    #[test]
    fn every_pixel_lies_in_the_rect_of_its_token() {
        for (input, photo) in [
            ((800, 1067), (480, 640)),
            ((800, 1199), (427, 640)),
            ((384, 384), (384, 384)),
        ] {
            let g = TokenGrid::new(&shapes(input.0, input.1), input, photo).unwrap();
            for level in 0..4 {
                let mut covered = vec![0u32; photo.0 * photo.1];
                for t in g.levels[level].start
                    ..g.levels[level].start + g.levels[level].rows * g.levels[level].cols
                {
                    let (l, [x0, y0, x1, y1]) = g.photo_rect(t).unwrap();
                    assert_eq!(l, level);
                    for y in y0..y1 {
                        for x in x0..x1 {
                            assert_eq!(
                                g.token_at(level, x, y),
                                t,
                                "{input:?} {photo:?} level {level}"
                            );
                            covered[y as usize * photo.1 + x as usize] += 1;
                        }
                    }
                }
                assert!(covered.iter().all(|&c| c == 1), "rects tile the photo");
            }
        }
    }
}
