//! The weight schema generated from the R50 preset equals the official key list and alias map,
//! through the library and through `focus-export names`.

mod common;

use focus_models::schema::shape_to_string;
use focus_models::{FocusDetrConfig, WeightSchema};

#[test]
fn r50_schema_equals_the_official_key_list() {
    let schema = WeightSchema::new(&FocusDetrConfig::default());
    let ours: Vec<String> = schema
        .canonical()
        .map(|e| format!("{}\t{}", e.key, shape_to_string(&e.shape)))
        .collect();
    let golden = std::fs::read_to_string(common::golden("r50_keys.txt")).unwrap();
    let golden: Vec<&str> = golden.lines().collect();
    assert_eq!(ours.len(), golden.len());
    for (i, (a, b)) in ours.iter().zip(&golden).enumerate() {
        assert_eq!(a, b, "line {}", i + 1);
    }
}

#[test]
fn r50_aliases_equal_the_official_alias_map() {
    let schema = WeightSchema::new(&FocusDetrConfig::default());
    let ours: Vec<String> = schema.aliases().map(|(a, c)| format!("{a}\t{c}")).collect();
    let golden = std::fs::read_to_string(common::golden("r50_aliases.txt")).unwrap();
    let golden: Vec<&str> = golden.lines().collect();
    assert_eq!(ours, golden);
}

#[test]
fn names_command_prints_the_same_lists() {
    let mut cmd = common::cli();
    cmd.args(["names", "--config", "r50_4scale_36ep"]);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        std::fs::read_to_string(common::golden("r50_keys.txt")).unwrap()
    );

    let mut cmd = common::cli();
    cmd.args(["names", "--aliases"]);
    let (ok, stdout, stderr) = common::output(cmd);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout,
        std::fs::read_to_string(common::golden("r50_aliases.txt")).unwrap()
    );
}
