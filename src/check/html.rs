//! `check --html`: the parity report as one self-contained HTML file (pictures inlined as data
//! URIs, no script, no external resource): the summary, and per image the reference's and the
//! exported model's detections side by side, each selection stage with its differing tokens
//! marked on the token map, the tensor tables with their budgets, and the COCO AP table.

use std::fmt::Write as _;

use base64::Engine as _;
use image::imageops::FilterType;
use image::{Rgb, RgbImage};

use super::render::{lead_line, status_word};
use super::report::{CaseReport, DetectionReport, Status, TensorReport};
use crate::accuracy::AccuracyReport;
use crate::explain::{labelled, photo_detections, token_grid};
use crate::pictures::{draw_detections, PictureError};
use crate::tensors::TensorMap;
use focus_cocoeval::STAT_NAMES;

/// Widest picture in the report, in pixels (smaller pictures keep their size).
const MAX_WIDTH: u32 = 560;
/// Detections shown on the pictures.
const SHOWN_MIN_SCORE: f32 = 0.3;
/// At most this many detections per picture.
const SHOWN_TOP: usize = 100;
/// Detections shown when none reaches [`SHOWN_MIN_SCORE`].
const FALLBACK_TOP: usize = 10;
/// Tokens only the reference selected.
const ONLY_REFERENCE: Rgb<u8> = Rgb([255, 40, 40]);
/// Tokens only the exported model selected.
const ONLY_EXPORTED: Rgb<u8> = Rgb([40, 160, 255]);

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A picture as an `<img>` with a JPEG data URI.
fn img_tag(img: &RgbImage, alt: &str) -> Result<String, PictureError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85)
        .encode_image(img)
        .map_err(|e| PictureError::Write {
            path: format!("(HTML report: {alt})"),
            message: e.to_string(),
        })?;
    Ok(format!(
        "<img alt=\"{}\" width=\"{}\" height=\"{}\" src=\"data:image/jpeg;base64,{}\">",
        escape(alt),
        img.width(),
        img.height(),
        base64::engine::general_purpose::STANDARD.encode(bytes.get_ref())
    ))
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok",
        Status::Explained => "explained",
        Status::Fail => "fail",
    }
}

fn tensor_table(title: &str, rows: &[TensorReport]) -> String {
    let mut s = format!(
        "<table><caption>{}</caption><tr><th>tensor</th><th>max |Δ|</th><th>mean |Δ|</th>\
         <th>budget</th><th>of budget</th><th>verdict</th><th>note</th></tr>",
        escape(title)
    );
    for t in rows {
        let share = t
            .budget_share()
            .map_or_else(|| "–".into(), |v| format!("{:.0} %", 100.0 * v));
        let _ = write!(
            s,
            "<tr class=\"{}\"><td>{}</td><td>{:.2e}</td><td>{:.2e}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            status_class(t.status),
            escape(&t.name),
            t.max_abs,
            t.mean_abs,
            t.tolerance
                .map_or_else(|| "exact".into(), |b| format!("{b:e}")),
            share,
            status_word(t.status),
            escape(t.note.as_deref().unwrap_or(""))
        );
    }
    s + "</table>"
}

fn detection_line(label: &str, d: &Option<DetectionReport>) -> String {
    match d {
        Some(d) => format!(
            "<p class=\"{}\">{}: {} of the reference's top-{} matched ({}){}</p>",
            status_class(d.status),
            escape(label),
            d.matched,
            d.compared,
            status_word(d.status),
            d.note
                .as_deref()
                .map_or_else(String::new, |n| format!(": {}", escape(n)))
        ),
        None => String::new(),
    }
}

/// The selection indices of batch row 0 of `name`, when `out` holds them.
fn row0<'a>(out: &'a TensorMap, name: &str) -> Option<&'a [i64]> {
    let t = out.get(name)?;
    let v = t.as_i64()?;
    let k = *t.shape.last()?;
    v.get(..k)
}

/// One image's section: `picture` is the model input as pixels (batch row 0), `reference` and
/// `exported` the two sides' outputs (free running).
pub fn case_section(
    report: &CaseReport,
    picture: Option<&RgbImage>,
    reference: &TensorMap,
    exported: &TensorMap,
) -> Result<String, PictureError> {
    let mut s = format!(
        "<section><h2 class=\"{}\">{}</h2><p class=\"lead\">{}</p>",
        status_class(report.status),
        escape(&report.name),
        escape(&lead_line(report))
    );
    let small = picture.map(|p| {
        let scale = f64::from(MAX_WIDTH) / f64::from(p.width());
        if scale >= 1.0 {
            p.clone()
        } else {
            let h = (f64::from(p.height()) * scale).round().max(1.0) as u32;
            image::imageops::resize(p, MAX_WIDTH, h, FilterType::Triangle)
        }
    });
    // (input size, picture size) of the pictures drawn below: detections and token maps.
    let sizes = picture.zip(small.as_ref()).map(|(p, small)| {
        (
            (p.height() as usize, p.width() as usize),
            (small.height() as usize, small.width() as usize),
        )
    });
    if let (Some(small), Some((input_hw, small_hw))) = (&small, sizes) {
        s += "<div class=\"pair\">";
        for (who, out) in [("reference", reference), ("exported model", exported)] {
            // Low-confidence models (e.g. synthetic weights) still show their best few.
            let shown = photo_detections(out, input_hw, small_hw, SHOWN_MIN_SCORE, SHOWN_TOP)
                .and_then(|d| {
                    if d.scores.is_empty() {
                        photo_detections(out, input_hw, small_hw, f32::NEG_INFINITY, FALLBACK_TOP)
                            .map(|d| {
                                (
                                    d,
                                    format!(
                                        "none reaches {SHOWN_MIN_SCORE}: the best {FALLBACK_TOP}"
                                    ),
                                )
                            })
                    } else {
                        let n = d.scores.len();
                        Ok((d, format!("{n} with score ≥ {SHOWN_MIN_SCORE}")))
                    }
                });
            let caption = match shown {
                Ok((dets, what)) => {
                    let mut img = small.clone();
                    draw_detections(&mut img, &labelled(&dets));
                    format!(
                        "{}<figcaption>{who}: detections, {}</figcaption>",
                        img_tag(&img, who)?,
                        escape(&what)
                    )
                }
                Err(e) => format!(
                    "<figcaption>{who}: no detections to draw ({})</figcaption>",
                    escape(&e.to_string())
                ),
            };
            let _ = write!(s, "<figure>{caption}</figure>");
        }
        s += "</div>";
    }
    if !report.selections.is_empty() {
        s += "<table><caption>selections, free running</caption><tr><th>stage</th><th>k</th>\
              <th>common</th><th>only reference</th><th>only exported</th><th>order differences</th>\
              <th>largest gap</th><th>verdict</th></tr>";
        for sel in &report.selections {
            let _ = write!(
                s,
                "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                status_class(sel.status),
                escape(&sel.stage),
                sel.k,
                sel.common,
                sel.only_reference,
                sel.only_runtime,
                sel.order_differences,
                sel.max_gap.map_or_else(|| "–".into(), |g| format!("{g:.1e}")),
                status_word(sel.status)
            );
        }
        s += "</table>";
    }
    // The differing stages on the token map: the reference's selection shown in colour, tokens
    // only one side selected painted.
    let grid =
        sizes.and_then(|(input_hw, small_hw)| token_grid(reference, input_hw, small_hw).ok());
    if let (Some(small), Some(grid)) = (&small, &grid) {
        let differing = report
            .selections
            .iter()
            .filter(|sel| sel.only_reference + sel.only_runtime > 0);
        for sel in differing {
            let (Some(r), Some(e)) = (row0(reference, &sel.stage), row0(exported, &sel.stage))
            else {
                continue;
            };
            let (rs, es): (
                std::collections::HashSet<i64>,
                std::collections::HashSet<i64>,
            ) = (r.iter().copied().collect(), e.iter().copied().collect());
            let mut only_r: Vec<i64> = rs.difference(&es).copied().collect();
            let mut only_e: Vec<i64> = es.difference(&rs).copied().collect();
            only_r.sort_unstable();
            only_e.sort_unstable();
            let mut img = grid.selection_map(small, r);
            grid.mark_tokens(&mut img, &only_r, ONLY_REFERENCE);
            grid.mark_tokens(&mut img, &only_e, ONLY_EXPORTED);
            let _ = write!(
                s,
                "<figure class=\"tokens\">{}<figcaption>{}: {} token(s) only the reference \
                 selected (red), {} only the exported model (blue); tinted: the reference's \
                 selection</figcaption></figure>",
                img_tag(&img, &sel.stage)?,
                escape(&sel.stage),
                only_r.len(),
                only_e.len()
            );
        }
    }
    if let Some(note) = &report.divergence_note {
        let _ = write!(s, "<p>{}</p>", escape(note));
    }
    s += &detection_line("free running", &report.detections);
    s += &tensor_table("tensors, free running", &report.tensors);
    if let Some(forced) = &report.forced {
        s += &tensor_table(
            &format!(
                "tensors, forced to the reference's selections ({})",
                report.forced_selections.join(", ")
            ),
            forced,
        );
        s += &detection_line("forced", &report.forced_detections);
    }
    Ok(s + "</section>")
}

/// The COCO accuracy table: each number for the reference and each pass, with its Δ.
fn accuracy_table(a: &AccuracyReport, reference: &str, exported: &str) -> String {
    let mut passes = vec![("free", &a.free)];
    if let Some(f) = &a.forced {
        passes.push(("forced", f));
    }
    let mut s = format!(
        "<table><caption>COCO accuracy on {} image(s), {} ground-truth box(es): {}</caption>\
         <tr><th></th><th>{}</th>",
        a.images,
        a.ground_truth_boxes,
        if a.passed { "ok" } else { "FAIL" },
        escape(reference)
    );
    for (label, _) in &passes {
        let _ = write!(s, "<th>{} {label}</th><th>Δ</th>", escape(exported));
    }
    s += "</tr>";
    for (i, name) in STAT_NAMES.iter().enumerate() {
        let _ = write!(s, "<tr><td>{name}</td><td>{:.4}</td>", a.reference.0[i]);
        for (_, p) in &passes {
            let _ = write!(
                s,
                "<td>{:.4}</td><td>{:+.4}</td>",
                p.exported.0[i], p.delta.0[i]
            );
        }
        s += "</tr>";
    }
    s += "<tr><td>agreement AP</td><td></td>";
    for (_, p) in &passes {
        let _ = write!(
            s,
            "<td>{}</td><td></td>",
            p.agreement_ap
                .map_or_else(|| "n/a".into(), |v| format!("{v:.4}"))
        );
    }
    s + "</tr></table>"
}

/// The whole report: a title, the summary lines, the accuracy table and the image sections.
pub fn document(
    title: &str,
    passed: bool,
    summary: &[String],
    accuracy: Option<(&AccuracyReport, &str, &str)>,
    sections: &[String],
) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
    );
    let _ = write!(s, "<title>{}</title>", escape(title));
    s += "<style>\
          body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
          h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
          .ok{color:#17702a}.explained{color:#8a6100}.fail{color:#b3001b;font-weight:bold}\
          tr.ok,tr.explained{color:inherit}tr.fail td{background:#ffe5e8}\
          h2.ok::before{content:'\\2714  '}h2.fail::before{content:'\\2718  '}\
          table{border-collapse:collapse;margin:.8em 0;font-size:.85em}\
          caption{text-align:left;font-weight:bold;padding:.3em 0}\
          td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}\
          td:first-child,th:first-child{text-align:left}\
          .pair{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}\
          figcaption{font-size:.85em;color:#444}img{max-width:100%;height:auto}\
          .lead{font-family:ui-monospace,monospace;font-size:.85em}\
          section{border-top:1px solid #ddd}\
          </style></head><body>";
    let _ = write!(
        s,
        "<h1 class=\"{}\">{}</h1>",
        if passed { "ok" } else { "fail" },
        escape(title)
    );
    for line in summary {
        let _ = write!(s, "<p>{}</p>", escape(line));
    }
    if let Some((a, r, e)) = accuracy {
        s += &accuracy_table(a, r, e);
    }
    for sec in sections {
        s += sec;
    }
    s + "</body></html>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
