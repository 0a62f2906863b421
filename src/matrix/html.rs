//! `matrix --html`: the matrix as one self-contained page (no script, no external resource, so
//! it opens offline): the setup, latency × accuracy scatter plots drawn as inline SVG (AP when
//! the images have ground truth, and agreement AP with the reference), and the table.

use std::fmt::Write as _;

use super::{MatrixReport, Row, RowStatus, COLUMNS};
use crate::check::html::escape;

/// Plot size in pixels, and the margins that hold the axes' labels.
const PLOT_W: f64 = 640.0;
const PLOT_H: f64 = 360.0;
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_BOTTOM: f64 = 48.0;
const MARGIN_TOP: f64 = 16.0;
const MARGIN_RIGHT: f64 = 160.0;

/// Colours of the points: the reference, then the combinations by runtime.
fn colour(row: &Row) -> &'static str {
    match row.runtime.as_str() {
        "torch" => "#222222",
        "ort" => "#1f77b4",
        "tract" => "#d62728",
        _ => "#7f7f7f",
    }
}

/// A latency × `metric` scatter plot of the measured rows that have both.
fn scatter(report: &MatrixReport, title: &str, metric: &dyn Fn(&Row) -> Option<f64>) -> String {
    let points: Vec<(&Row, f64, f64)> = report
        .rows
        .iter()
        .filter(|r| r.status == RowStatus::Measured)
        .filter_map(|r| Some((r, r.latency.as_ref()?.p50_s, metric(r)?)))
        .collect();
    if points.is_empty() {
        return format!(
            "<p class=\"none\">{}: nothing to plot.</p>\n",
            escape(title)
        );
    }
    let x_max = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let (y_lo, y_hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.2), hi.max(p.2))
        });
    // Accuracy axes start where the data does (a small spread is the point of the plot), padded.
    let pad = ((y_hi - y_lo) * 0.15).max(0.01);
    let (y_lo, y_hi) = ((y_lo - pad).max(0.0), (y_hi + pad).min(1.0).max(y_lo + pad));
    let (w, h) = (
        PLOT_W - MARGIN_LEFT - MARGIN_RIGHT,
        PLOT_H - MARGIN_TOP - MARGIN_BOTTOM,
    );
    let px = |x: f64| MARGIN_LEFT + x / x_max * w;
    let py = |y: f64| MARGIN_TOP + (1.0 - (y - y_lo) / (y_hi - y_lo)) * h;
    let mut s = format!(
        "<figure><svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" \
         viewBox=\"0 0 {PLOT_W} {PLOT_H}\" role=\"img\" aria-label=\"{t}\">\n",
        t = escape(title)
    );
    let _ = writeln!(
        s,
        "<rect x=\"{MARGIN_LEFT}\" y=\"{MARGIN_TOP}\" width=\"{w}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#999\"/>"
    );
    for i in 0..=4 {
        let (xv, yv) = (
            x_max * f64::from(i) / 4.0,
            y_lo + (y_hi - y_lo) * f64::from(i) / 4.0,
        );
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"middle\">{xv:.2}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{yv:.3}</text>",
            px(xv),
            MARGIN_TOP + h + 16.0,
            MARGIN_LEFT - 6.0,
            py(yv) + 4.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\">p50 latency, s</text>\
         <text x=\"14\" y=\"{:.1}\" font-size=\"12\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
        MARGIN_LEFT + w / 2.0,
        PLOT_H - 8.0,
        MARGIN_TOP + h / 2.0,
        MARGIN_TOP + h / 2.0,
        escape(title)
    );
    for (row, x, y) in &points {
        let _ = writeln!(
            s,
            "<g class=\"point\"><circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"5\" fill=\"{}\"><title>{}: {x:.3} s, {y:.4}</title></circle>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\">{}</text></g>",
            px(*x),
            py(*y),
            colour(row),
            escape(&row.label),
            px(*x) + 8.0,
            py(*y) + 4.0,
            escape(&row.label)
        );
    }
    s += "</svg></figure>\n";
    s
}

/// The table as HTML.
fn table(report: &MatrixReport) -> String {
    let mut s = String::from("<table>\n<tr>");
    for c in COLUMNS {
        let _ = write!(s, "<th>{}</th>", escape(c));
    }
    s += "</tr>\n";
    for (row, cells) in report.rows.iter().zip(report.cells()) {
        let class = match row.status {
            RowStatus::Measured => "measured",
            RowStatus::Skipped => "skipped",
            RowStatus::Failed => "failed",
        };
        let _ = write!(s, "<tr class=\"{class}\">");
        if row.status == RowStatus::Measured {
            for c in &cells {
                let _ = write!(s, "<td>{}</td>", escape(c));
            }
        } else {
            let _ = write!(
                s,
                "<td>{}</td><td colspan=\"{}\">{}</td>",
                escape(&cells[0]),
                COLUMNS.len() - 1,
                escape(&cells[1])
            );
        }
        s += "</tr>\n";
    }
    s += "</table>\n";
    s
}

/// The whole page.
pub fn document(report: &MatrixReport) -> String {
    let mut s = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>focus-export matrix</title>\n<style>\
         body{font-family:sans-serif;margin:1.5em;color:#222}\
         table{border-collapse:collapse;font-size:13px}\
         td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}\
         td:first-child,th:first-child{text-align:left}\
         tr.failed td{background:#fdd}tr.skipped td{color:#888}\
         figure{display:inline-block;margin:0 1em 1em 0}\
         </style></head><body>\n<h1>focus-export matrix</h1>\n",
    );
    let _ = writeln!(s, "<p>{}</p>", escape(&report.setup_line()));
    if let Some(c) = &report.setup.calibration {
        let _ = writeln!(s, "<p>int8 calibration: {}</p>", escape(c));
    }
    if report.setup.ground_truth_boxes > 0 {
        s += &scatter(report, "COCO AP (free running)", &|r| r.ap);
    }
    s += &scatter(report, "agreement AP with the reference", &|r| {
        r.agreement_ap
    });
    s += &table(report);
    s += "<p>Latency: <code>focus-export bench</code>, each model in a process of its own. \
          Accuracy: the free-running pass against the torch reference on the same images; the \
          forced pass is fed the reference's 13 selections and judged tensor by tensor at its \
          precision's budgets (<code>focus_export::check</code>).</p>\n</body></html>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_self_contained_with_a_point_per_measured_row() {
        let r = super::super::tests::sample();
        let page = document(&r);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(!page.contains("<script"), "no script");
        // The SVG namespace is the only URL, and nothing is fetched.
        assert!(!page.contains("src=") && !page.contains("href="));
        assert_eq!(page.matches("<svg").count(), 2, "AP and agreement AP");
        assert_eq!(page.matches("class=\"point\"").count(), 2 * 2);
        assert_eq!(page.matches("<tr class=").count(), r.rows.len());
        assert!(page.contains("tract cannot type it | at all"));
    }
}
