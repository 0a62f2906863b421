//! Colour blending, the one colour operation text and token pictures both draw with.

use image::Rgb;

/// Mixes `a` towards `b`: (1 − t)·a + t·b per channel.
pub fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    Rgb(std::array::from_fn(|c| {
        (f32::from(a.0[c]) * (1.0 - t) + f32::from(b.0[c]) * t).round() as u8
    }))
}
