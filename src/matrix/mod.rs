//! `focus-export matrix`: what one set of weights costs and keeps on each runtime × precision ×
//! export target. This module owns the report: a measured row per combination (accuracy on the
//! images against the torch reference, the forced pass's worst tensor as a share of its budget,
//! latency and peak memory from `bench`, file size) and its renderings: the terminal table and
//! Markdown here, the self-contained HTML page with its latency × accuracy plot in `html`.

pub mod html;

use serde::Serialize;

use crate::accuracy::AccuracyReport;
use crate::bench::BenchResult;

/// What came of one combination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RowStatus {
    /// Exported, checked and timed.
    Measured,
    /// Not attempted: a combination known not to work, with the reason in the note.
    Skipped,
    /// Something failed on the way; the note says what.
    Failed,
}

/// The forced pass of one combination over every image: each tensor's largest deviation as a
/// share of its budget, the worst of them, and the top-100 agreement.
#[derive(Debug, Clone, Serialize)]
pub struct ForcedSummary {
    /// The budget set judging it (`fp32`, `fp16`, `int8`: `focus_export::check`).
    pub budgets: String,
    /// The tensor with the largest max |Δ| ÷ budget over all images.
    pub worst_tensor: String,
    /// That share (≤ 1: within its budget).
    pub worst_share: f64,
    /// Images whose forced pass is within budget everywhere.
    pub within_budget: usize,
    /// Images checked.
    pub images: usize,
    /// The smallest share of the reference's top detections matched on any image.
    pub min_matched: Option<f64>,
}

/// Latency and memory of one combination, from `focus-export bench` (a process of its own).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median of the timed runs, seconds.
    pub p50_s: f64,
    /// 90th percentile (nearest rank), seconds.
    pub p90_s: f64,
    /// Peak resident memory of the timing process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Loading the model (or the weights), seconds.
    pub load_s: f64,
    /// Timed runs behind the percentiles.
    pub runs: usize,
}

impl From<&BenchResult> for Latency {
    fn from(b: &BenchResult) -> Self {
        Latency {
            p50_s: b.p50_s,
            p90_s: b.p90_s,
            peak_rss_mib: b.peak_rss_mib,
            load_s: b.load_s,
            runs: b.runs_s.len(),
        }
    }
}

/// One combination (or the reference) as measured.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `ort-cpu fp32`, `tract int8`, `torch fp32 (reference)`.
    pub label: String,
    /// The runtime (`torch`, `ort`, `tract`).
    pub runtime: String,
    /// The precision (`fp32`, `fp16`, `int8`).
    pub precision: String,
    /// The export target (`ort-cpu`, `tract`, `standard`: no target; `-` for the reference).
    pub target: String,
    /// Whether it was measured.
    pub status: RowStatus,
    /// Why it was skipped or failed, or a remark.
    pub note: Option<String>,
    /// The deployed file (the weights for the reference).
    pub file: Option<String>,
    /// Its size, MB.
    pub file_mb: Option<f64>,
    /// COCO AP@[.5:.95] of the free-running pass (None without ground truth).
    pub ap: Option<f64>,
    /// AP − the reference's AP.
    pub delta_ap: Option<f64>,
    /// The largest |Δ| over the six AP numbers, and which.
    pub worst_delta: Option<(String, f64)>,
    /// Agreement AP of the free-running pass (the reference's confident detections as truth).
    pub agreement_ap: Option<f64>,
    /// Agreement AP of the forced pass.
    pub forced_agreement_ap: Option<f64>,
    /// The forced pass's deviations.
    pub forced: Option<ForcedSummary>,
    /// Timings.
    pub latency: Option<Latency>,
    /// The full accuracy report (both passes, twelve numbers each).
    pub accuracy: Option<AccuracyReport>,
}

impl Row {
    /// A row naming its combination, status and note, with nothing measured in it yet (a
    /// skipped or failed row as it is; a measured one with its figures filled in).
    pub fn new(
        label: String,
        runtime: &str,
        precision: &str,
        target: &str,
        status: RowStatus,
        note: Option<String>,
    ) -> Row {
        Row {
            label,
            runtime: runtime.into(),
            precision: precision.into(),
            target: target.into(),
            status,
            note,
            file: None,
            file_mb: None,
            ap: None,
            delta_ap: None,
            worst_delta: None,
            agreement_ap: None,
            forced_agreement_ap: None,
            forced: None,
            latency: None,
            accuracy: None,
        }
    }
}

/// What the rows were measured on and how.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// The weights file.
    pub weights: String,
    /// The configuration's name.
    pub config: String,
    /// Where the images came from (`COCO annotations A, images D` or a folder).
    pub images_source: String,
    /// Images evaluated.
    pub images: usize,
    /// Ground-truth boxes over them (0 without annotations: AP is then not measured).
    pub ground_truth_boxes: usize,
    /// The input the latencies were measured on, and its shape.
    pub bench_input: String,
    /// `[B, 3, H, W]` of that input.
    pub bench_shape: Vec<usize>,
    /// Runtime threads (None: each runtime's default).
    pub threads: Option<usize>,
    /// Warm-up and timed runs per round, and rounds.
    pub warmup: usize,
    /// Timed runs per round.
    pub runs: usize,
    /// Rounds (`bench --rounds`).
    pub rounds: u32,
    /// The int8 calibration: folder, images and method.
    pub calibration: Option<String>,
    /// The CPU (`/proc/cpuinfo`'s model name).
    pub cpu: String,
    /// focus-export's version.
    pub version: String,
}

/// The whole matrix.
#[derive(Debug, Clone, Serialize)]
pub struct MatrixReport {
    /// What it was measured on.
    pub setup: Setup,
    /// The torch reference, then every combination in the order asked.
    pub rows: Vec<Row>,
    /// Whether every combination asked for was measured (skipped ones do not count).
    pub complete: bool,
}

/// The CPU's model name (Linux `/proc/cpuinfo`), or `unknown`.
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The columns of the table, shared by the terminal and Markdown renderings.
const COLUMNS: [&str; 11] = [
    "combination",
    "file MB",
    "AP",
    "ΔAP",
    "agreement AP free / forced",
    "forced worst (share of budget)",
    "forced matched",
    "p50 s",
    "p90 s",
    "p50 ÷ torch",
    "peak MiB",
];

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "–".into(), f)
}

impl MatrixReport {
    /// The torch reference's row (the first).
    pub fn reference(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.runtime == "torch")
    }

    /// Each row's cells as text, in [`COLUMNS`] order.
    fn cells(&self) -> Vec<Vec<String>> {
        let torch_p50 = self
            .reference()
            .and_then(|r| r.latency.as_ref())
            .map(|l| l.p50_s);
        self.rows
            .iter()
            .map(|r| {
                if r.status != RowStatus::Measured {
                    let mut v = vec![r.label.clone()];
                    v.push(format!(
                        "{}: {}",
                        if r.status == RowStatus::Skipped {
                            "skipped"
                        } else {
                            "FAILED"
                        },
                        r.note.as_deref().unwrap_or("")
                    ));
                    v.resize(COLUMNS.len(), String::new());
                    return v;
                }
                let lat = r.latency.as_ref();
                vec![
                    r.label.clone(),
                    opt(r.file_mb, |m| format!("{m:.1}")),
                    opt(r.ap, |a| format!("{a:.4}")),
                    opt(r.delta_ap, |d| format!("{d:+.4}")),
                    format!(
                        "{} / {}",
                        opt(r.agreement_ap, |a| format!("{a:.4}")),
                        opt(r.forced_agreement_ap, |a| format!("{a:.4}"))
                    ),
                    r.forced.as_ref().map_or_else(
                        || "–".into(),
                        |f| format!("{:.2} {} ({})", f.worst_share, f.worst_tensor, f.budgets),
                    ),
                    r.forced.as_ref().map_or_else(
                        || "–".into(),
                        |f| {
                            format!(
                                "{}/{} in budget{}",
                                f.within_budget,
                                f.images,
                                opt(f.min_matched, |m| format!(", ≥ {:.0} %", m * 100.0))
                            )
                        },
                    ),
                    opt(lat.map(|l| l.p50_s), |v| format!("{v:.3}")),
                    opt(lat.map(|l| l.p90_s), |v| format!("{v:.3}")),
                    opt(
                        lat.map(|l| l.p50_s).zip(torch_p50).map(|(a, b)| a / b),
                        |v| format!("{v:.2}"),
                    ),
                    opt(lat.and_then(|l| l.peak_rss_mib), |v| format!("{v:.0}")),
                ]
            })
            .collect()
    }

    /// One line on what was measured.
    pub fn setup_line(&self) -> String {
        let s = &self.setup;
        format!(
            "{} ({}) on {} image(s) of {} ({} ground-truth boxes); latency on {} {:?}, {} warm-up + {} run(s) × {} round(s), threads {}; {}",
            s.weights,
            s.config,
            s.images,
            s.images_source,
            s.ground_truth_boxes,
            s.bench_input,
            s.bench_shape,
            s.warmup,
            s.runs,
            s.rounds,
            s.threads.map_or_else(|| "default".into(), |t| t.to_string()),
            s.cpu
        )
    }

    /// The table for a terminal.
    pub fn table(&self) -> String {
        let cells = self.cells();
        let mut width: Vec<usize> = COLUMNS.iter().map(|c| c.chars().count()).collect();
        for row in &cells {
            if row.get(2).is_some_and(|c| !c.is_empty()) {
                for (w, c) in width.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
        }
        let line = |row: &[String]| {
            let mut s = String::from(" ");
            for (i, (c, w)) in row.iter().zip(&width).enumerate() {
                let pad = w.saturating_sub(c.chars().count());
                if i == 0 {
                    s += &format!(" {c}{}", " ".repeat(pad));
                } else if c.is_empty() {
                    continue;
                } else {
                    s += &format!("  {}{c}", " ".repeat(pad));
                }
            }
            s.trim_end().to_string() + "\n"
        };
        let mut s = self.setup_line() + "\n";
        s += &line(&COLUMNS.map(String::from));
        for row in &cells {
            s += &line(row);
        }
        s
    }

    /// The table as GitHub-flavoured Markdown, with the setup line above it.
    pub fn markdown(&self) -> String {
        let mut s = format!("{}\n\n", self.setup_line());
        s += &format!("| {} |\n", COLUMNS.join(" | "));
        s += &format!("|{}\n", "---|".repeat(COLUMNS.len()));
        for row in self.cells() {
            let row: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
            s += &format!("| {} |\n", row.join(" | "));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn sample() -> MatrixReport {
        let measured = |label: &str, rt: &str, p50: f64, agreement: f64| Row {
            label: label.into(),
            runtime: rt.into(),
            precision: "fp32".into(),
            target: "ort-cpu".into(),
            status: RowStatus::Measured,
            note: None,
            file: Some("x.onnx".into()),
            file_mb: Some(197.7),
            ap: Some(0.5),
            delta_ap: Some(-0.01),
            worst_delta: Some(("AP50".into(), 0.02)),
            agreement_ap: Some(agreement),
            forced_agreement_ap: Some(0.99),
            forced: Some(ForcedSummary {
                budgets: "fp32".into(),
                worst_tensor: "memory".into(),
                worst_share: 0.25,
                within_budget: 4,
                images: 4,
                min_matched: Some(1.0),
            }),
            latency: Some(Latency {
                p50_s: p50,
                p90_s: p50 * 1.1,
                peak_rss_mib: Some(700.0),
                load_s: 0.5,
                runs: 3,
            }),
            accuracy: None,
        };
        MatrixReport {
            setup: Setup {
                weights: "w.safetensors".into(),
                config: "r50_4scale_36ep".into(),
                images_source: "photos".into(),
                images: 4,
                ground_truth_boxes: 7,
                bench_input: "a.png".into(),
                bench_shape: vec![1, 3, 800, 800],
                threads: Some(2),
                warmup: 1,
                runs: 3,
                rounds: 1,
                calibration: None,
                cpu: "test cpu".into(),
                version: "0".into(),
            },
            rows: vec![
                measured("torch fp32 (reference)", "torch", 2.0, 1.0),
                measured("ort-cpu fp32", "ort", 1.0, 0.98),
                Row::new(
                    "tract fp16".into(),
                    "tract",
                    "fp16",
                    "tract",
                    RowStatus::Skipped,
                    Some("tract cannot type it | at all".into()),
                ),
            ],
            complete: true,
        }
    }

    #[test]
    fn the_table_has_every_row_and_the_ratio_to_torch() {
        let r = sample();
        let t = r.table();
        assert_eq!(t.lines().count(), 2 + r.rows.len(), "{t}");
        let ort = t.lines().find(|l| l.contains("ort-cpu fp32")).unwrap();
        assert!(ort.contains(" 0.50 ") || ort.ends_with(" 700"), "{ort}");
        assert!(ort.contains("0.25 memory (fp32)"), "{ort}");
        assert!(t.contains("skipped: tract cannot type it"), "{t}");
    }

    #[test]
    fn markdown_rows_have_every_column_and_escape_pipes() {
        let md = sample().markdown();
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 2 + 3);
        for r in &rows {
            // One more bar than columns, escaped bars excluded.
            let bars = r.matches('|').count() - r.matches("\\|").count();
            assert_eq!(bars, COLUMNS.len() + 1, "{r}");
        }
        assert!(md.contains("cannot type it \\| at all"));
    }
}
