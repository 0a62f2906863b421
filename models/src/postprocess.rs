//! Host-side post-processing after the model: detectron2's `detector_postprocess` (rescale boxes
//! to the original image, clip them to it, drop empty ones), COCO category ids and names.

/// Detections of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Detections {
    /// Scores, best first.
    pub scores: Vec<f32>,
    /// Contiguous class indices (0-based).
    pub labels: Vec<i64>,
    /// Boxes (x1, y1, x2, y2) in original-image pixels.
    pub boxes: Vec<[f32; 4]>,
}

/// Rescales boxes from the input size to the original size (both (H, W)), clips them to the
/// original image and drops boxes with zero width or height, as detectron2 does.
pub fn clip_and_drop(
    scores: &[f32],
    labels: &[i64],
    boxes: &[[f32; 4]],
    input_hw: (f32, f32),
    orig_hw: (f32, f32),
) -> Detections {
    // detectron2 multiplies by a Python float; PyTorch applies it in float32.
    let sx = (f64::from(orig_hw.1) / f64::from(input_hw.1)) as f32;
    let sy = (f64::from(orig_hw.0) / f64::from(input_hw.0)) as f32;
    let (h, w) = orig_hw;
    let mut out = Detections {
        scores: vec![],
        labels: vec![],
        boxes: vec![],
    };
    for ((s, l), b) in scores.iter().zip(labels).zip(boxes) {
        let x1 = (b[0] * sx).clamp(0.0, w);
        let y1 = (b[1] * sy).clamp(0.0, h);
        let x2 = (b[2] * sx).clamp(0.0, w);
        let y2 = (b[3] * sy).clamp(0.0, h);
        if x2 - x1 > 0.0 && y2 - y1 > 0.0 {
            out.scores.push(*s);
            out.labels.push(*l);
            out.boxes.push([x1, y1, x2, y2]);
        }
    }
    out
}

/// COCO category id of each contiguous label (the 80 ids in ascending order).
pub const COCO_IDS: [u32; 80] = [
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
];

/// COCO category name of each contiguous label.
pub const COCO_NAMES: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_and_drops_like_detectron2() {
        let d = clip_and_drop(
            &[0.9, 0.8, 0.7],
            &[1, 2, 3],
            &[
                [-5.0, 2.0, 50.0, 20.0],
                [110.0, 0.0, 130.0, 10.0],
                [10.0, 10.0, 20.0, 20.0],
            ],
            (100.0, 100.0),
            (100.0, 100.0),
        );
        assert_eq!(d.labels, vec![1, 3]);
        assert_eq!(d.boxes[0], [0.0, 2.0, 50.0, 20.0]);
        let d = clip_and_drop(
            &[0.5],
            &[0],
            &[[10.0, 10.0, 20.0, 20.0]],
            (100.0, 200.0),
            (50.0, 400.0),
        );
        assert_eq!(d.boxes[0], [20.0, 5.0, 40.0, 10.0]);
    }

    #[test]
    fn coco_ids_are_the_80_categories() {
        assert!(COCO_IDS.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(COCO_IDS[79], 90);
        assert_eq!(COCO_NAMES[0], "person");
    }
}
