//! COCO ground-truth and results files: parsing, validation with errors that name the entry, and
//! the fields evaluation reads, with pycocotools' `loadRes` semantics (a detection's area is
//! `w·h`, it is never a crowd, its id is its position + 1).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// A ground-truth box.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Annotation id (a detection matched to it records this id; 0 counts as "unmatched", as
    /// in pycocotools).
    pub id: i64,
    /// The image it belongs to.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// [x, y, width, height] in pixels.
    pub bbox: [f64; 4],
    /// The annotation's `area` field: it, not the box, decides the area range.
    pub area: f64,
    /// A crowd region: ignored, and its IoU is the intersection over the detection's area.
    pub iscrowd: bool,
}

/// A ground-truth annotation file: the fields `COCOeval` uses.
#[derive(Debug, Clone, PartialEq)]
pub struct GroundTruth {
    /// Image ids, ascending and unique (every image is evaluated, with or without boxes).
    pub image_ids: Vec<i64>,
    /// Category ids, ascending and unique (the categories evaluated).
    pub category_ids: Vec<i64>,
    /// Annotations in file order; those of unlisted images or categories are not evaluated.
    pub annotations: Vec<Annotation>,
}

/// A detection of a results file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The image it was found in.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// [x, y, width, height] in pixels.
    pub bbox: [f64; 4],
    /// Confidence.
    pub score: f64,
}

/// A results file, checked against its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    /// The detections, in file order.
    pub detections: Vec<Detection>,
    /// How many name a category the ground truth does not list (pycocotools ignores them).
    pub unknown_category: usize,
}

#[derive(Deserialize)]
struct RawImage {
    id: i64,
}

#[derive(Deserialize)]
struct RawCategory {
    id: i64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Int(i64),
    Bool(bool),
}

#[derive(Deserialize)]
struct RawAnnotation {
    id: i64,
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    area: f64,
    iscrowd: Flag,
}

#[derive(Deserialize)]
struct RawGroundTruth {
    images: Vec<RawImage>,
    #[serde(default)]
    annotations: Vec<RawAnnotation>,
    categories: Vec<RawCategory>,
}

#[derive(Deserialize)]
struct RawDetection {
    image_id: i64,
    category_id: i64,
    bbox: Vec<f64>,
    score: f64,
}

fn invalid(file: &str, message: String) -> EvalError {
    EvalError::Invalid {
        file: file.to_string(),
        message,
    }
}

/// Parses JSON into `T`, naming the failing entry (`annotations[3].area`) and spelling out
/// Python's non-standard `NaN`/`Infinity` literals, which JSON has no room for.
fn parse_json<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T, EvalError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let inner = e.inner();
        let at = e.path().to_string();
        let (line, column) = (inner.line(), inner.column());
        let offset: usize = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + column.saturating_sub(1);
        // serde_json stops at `-Infinity`'s second character: look one back.
        let literal = ["-Infinity", "NaN", "Infinity"].into_iter().find(|l| {
            [offset.saturating_sub(1), offset]
                .iter()
                .any(|&o| text.get(o..).is_some_and(|r| r.starts_with(l)))
        });
        let what = match literal {
            Some(l) => format!(
                "`{l}` at line {line} column {column} is not a JSON number (scores, boxes and \
                 areas must be finite)"
            ),
            None => inner.to_string(),
        };
        if at.is_empty() || at == "." {
            invalid(file, what)
        } else {
            invalid(file, format!("at `{at}`: {what}"))
        }
    })
}

fn read_text(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|e| EvalError::Read {
        file: path.display().to_string(),
        message: e.to_string(),
    })
}

/// A box of four finite numbers with non-negative width and height, or what is wrong with it.
fn xywh(b: &[f64]) -> Result<[f64; 4], String> {
    let &[x, y, w, h] = b else {
        return Err(format!(
            "bbox has {} number(s), expected 4: [x, y, width, height]",
            b.len()
        ));
    };
    if !b.iter().all(|v| v.is_finite()) {
        return Err(format!("bbox {b:?} is not finite"));
    }
    if w < 0.0 || h < 0.0 {
        return Err(format!(
            "bbox {b:?} has a negative width or height (COCO boxes are [x, y, width, height])"
        ));
    }
    Ok([x, y, w, h])
}

/// Sorted, de-duplicated ids (numpy's `unique`, as `COCOeval` applies to its parameters).
pub fn unique_sorted(mut v: Vec<i64>) -> Vec<i64> {
    v.sort_unstable();
    v.dedup();
    v
}

/// Parses a COCO annotation file's text (`file` names it in errors).
pub fn parse_ground_truth(text: &str, file: &str) -> Result<GroundTruth, EvalError> {
    let raw: RawGroundTruth = parse_json(text, file)?;
    let mut ids = HashSet::new();
    let mut annotations = Vec::with_capacity(raw.annotations.len());
    for (n, a) in raw.annotations.into_iter().enumerate() {
        let bad = |m: String| invalid(file, format!("annotations[{n}] (id {}): {m}", a.id));
        if !ids.insert(a.id) {
            // pycocotools indexes annotations by id: a repeated id silently replaces the first.
            return Err(bad("repeated annotation id (ids must be unique)".into()));
        }
        let bbox = xywh(&a.bbox).map_err(bad)?;
        if !a.area.is_finite() || a.area < 0.0 {
            return Err(bad(format!("area {} is not a finite number ≥ 0", a.area)));
        }
        let iscrowd = match a.iscrowd {
            Flag::Int(v) => v != 0,
            Flag::Bool(v) => v,
        };
        annotations.push(Annotation {
            id: a.id,
            image_id: a.image_id,
            category_id: a.category_id,
            bbox,
            area: a.area,
            iscrowd,
        });
    }
    let image_ids = unique_sorted(raw.images.iter().map(|i| i.id).collect());
    if image_ids.is_empty() {
        return Err(invalid(
            file,
            "`images` is empty: nothing to evaluate".into(),
        ));
    }
    Ok(GroundTruth {
        image_ids,
        category_ids: unique_sorted(raw.categories.iter().map(|c| c.id).collect()),
        annotations,
    })
}

/// Reads a COCO annotation file.
pub fn read_ground_truth(path: &Path) -> Result<GroundTruth, EvalError> {
    parse_ground_truth(&read_text(path)?, &path.display().to_string())
}

/// Parses a COCO results file's text (a list of `{image_id, category_id, bbox, score}`) and
/// checks it against `gt`: every image id must be one of its images (pycocotools refuses the
/// file otherwise). An empty list is accepted (no detections: every AP is 0).
pub fn parse_results(text: &str, file: &str, gt: &GroundTruth) -> Result<Results, EvalError> {
    let raw: Vec<RawDetection> = parse_json(text, file)?;
    let mut detections = Vec::with_capacity(raw.len());
    let mut unknown_category = 0;
    for (n, d) in raw.into_iter().enumerate() {
        let bad = |m: String| invalid(file, format!("[{n}]: {m}"));
        if gt.image_ids.binary_search(&d.image_id).is_err() {
            return Err(bad(format!(
                "image_id {} is not an image of the annotation file",
                d.image_id
            )));
        }
        if !d.score.is_finite() {
            return Err(bad(format!("score {} is not finite", d.score)));
        }
        let bbox = xywh(&d.bbox).map_err(bad)?;
        if gt.category_ids.binary_search(&d.category_id).is_err() {
            unknown_category += 1;
        }
        detections.push(Detection {
            image_id: d.image_id,
            category_id: d.category_id,
            bbox,
            score: d.score,
        });
    }
    Ok(Results {
        detections,
        unknown_category,
    })
}

/// Reads a COCO results file and checks it against `gt`.
pub fn read_results(path: &Path, gt: &GroundTruth) -> Result<Results, EvalError> {
    parse_results(&read_text(path)?, &path.display().to_string(), gt)
}

/// A COCO results file's text for `detections`.
pub fn results_json(detections: &[Detection]) -> String {
    // Serialising plain numbers and strings cannot fail.
    serde_json::to_string(detections).unwrap_or_else(|_| "[]".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GT: &str = r#"{"images": [{"id": 3}, {"id": 1}, {"id": 3}],
        "categories": [{"id": 7}, {"id": 2}],
        "annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4],
                         "area": 12, "iscrowd": 0}]}"#;

    fn message(e: EvalError) -> String {
        e.to_string()
    }

    #[test]
    fn ground_truth_ids_are_sorted_and_unique() {
        let gt = parse_ground_truth(GT, "gt.json").unwrap();
        assert_eq!(gt.image_ids, vec![1, 3]);
        assert_eq!(gt.category_ids, vec![2, 7]);
        assert_eq!(gt.annotations[0].bbox, [1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn errors_name_the_entry() {
        let missing = GT.replace(r#""area": 12, "#, "");
        let e = message(parse_ground_truth(&missing, "gt.json").unwrap_err());
        assert!(
            e.contains("gt.json") && e.contains("annotations[0]") && e.contains("area"),
            "{e}"
        );
        let gt = parse_ground_truth(GT, "gt.json").unwrap();
        let cases = [
            (
                r#"[{"image_id": 9, "category_id": 2, "bbox": [0,0,1,1], "score": 0.5}]"#,
                "[0]: image_id 9",
            ),
            (
                r#"[{"image_id": 1, "category_id": 2, "bbox": [0,0,1], "score": 0.5}]"#,
                "has 3 number(s)",
            ),
            (
                r#"[{"image_id": 1, "category_id": 2, "bbox": [0,0,-1,1], "score": 0.5}]"#,
                "negative width",
            ),
            (
                r#"[{"image_id": 1, "category_id": 2, "bbox": [0,0,1,1]}]"#,
                "missing field `score`",
            ),
            (
                r#"[{"image_id": 1, "category_id": 2, "bbox": [0,0,1,1], "score": NaN}]"#,
                "`NaN` at line 1",
            ),
            (
                r#"[{"image_id": 1, "category_id": 2, "bbox": [0,0,1,1], "score": -Infinity}]"#,
                "`-Infinity`",
            ),
        ];
        for (text, want) in cases {
            let e = message(parse_results(text, "dets.json", &gt).unwrap_err());
            assert!(
                e.starts_with("dets.json: ") && e.contains(want),
                "{e} (wanted {want})"
            );
        }
        let dup = GT.replace(r#""annotations": ["#, r#""annotations": [{"id": 5, "image_id": 1, "category_id": 2, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}, "#);
        let e = message(parse_ground_truth(&dup, "gt.json").unwrap_err());
        assert!(
            e.contains("annotations[1] (id 5): repeated annotation id"),
            "{e}"
        );
    }

    #[test]
    fn unknown_categories_are_counted_not_refused() {
        let gt = parse_ground_truth(GT, "gt.json").unwrap();
        let r = parse_results(
            r#"[{"image_id": 3, "category_id": 99, "bbox": [0,0,1,1], "score": 1}]"#,
            "d.json",
            &gt,
        )
        .unwrap();
        assert_eq!(r.unknown_category, 1);
        let back = parse_results(&results_json(&r.detections), "d.json", &gt).unwrap();
        assert_eq!(back, r);
    }
}
