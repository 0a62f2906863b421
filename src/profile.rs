//! Per-op time of a runtime's own profiler, summed per op type and per node over the timed runs
//! (`bench --profile`). ONNX Runtime's profile is a Chrome trace: one `Session` event per run
//! (`model_run`) and one `Node` event per kernel (`<node>_kernel_time`, `args.op_name`); tract's
//! is timed node by node around its own evaluation ([`NodeTimes`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Time per op type and the slowest nodes, per run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OpProfile {
    /// Runs the figures are averaged over (the last ones recorded: warm-up runs are left out).
    pub runs: usize,
    /// Kernel time per run, seconds (all nodes).
    pub kernel_s: f64,
    /// (op type, seconds per run, nodes of that type), slowest first.
    pub by_op: Vec<(String, f64, usize)>,
    /// (node name, op type, seconds per run), slowest first, at most [`TOP_NODES`].
    pub top_nodes: Vec<(String, String, f64)>,
}

/// Nodes listed in [`OpProfile::top_nodes`].
pub const TOP_NODES: usize = 12;

/// Share of the kernel time whose op types [`OpProfile::table`] lists one by one (the long tail
/// of near-zero op types is summed in one line; the JSON keeps them all).
const SHOWN_SHARE: f64 = 0.99;

/// A profile file that is not the trace expected.
#[derive(Debug, thiserror::Error)]
#[error("profile {path}: {message}")]
pub struct ProfileError {
    /// The profile file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    cat: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    ts: f64,
    #[serde(default)]
    dur: f64,
    #[serde(default)]
    args: serde_json::Map<String, serde_json::Value>,
}

/// Sums ONNX Runtime's trace `json` (from `path`, for errors) over its last `runs` runs.
pub fn parse_ort(json: &str, path: &str, runs: usize) -> Result<OpProfile, ProfileError> {
    let err = |message: String| ProfileError {
        path: path.into(),
        message,
    };
    let events: Vec<Event> =
        serde_json::from_str(json).map_err(|e| err(format!("not a JSON event list: {e}")))?;
    let mut windows: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| e.cat == "Session" && e.name == "model_run")
        .map(|e| (e.ts, e.ts + e.dur))
        .collect();
    windows.sort_by(|a, b| a.0.total_cmp(&b.0));
    if windows.len() < runs || runs == 0 {
        return Err(err(format!(
            "{} recorded run(s), expected at least {runs}",
            windows.len()
        )));
    }
    let windows = &windows[windows.len() - runs..];
    let in_timed_run = |ts: f64| windows.iter().any(|(a, b)| ts >= *a && ts <= *b);
    let mut nodes = NodeTimes::default();
    for e in &events {
        let Some(node) = e.name.strip_suffix("_kernel_time") else {
            continue;
        };
        if e.cat != "Node" || !in_timed_run(e.ts) {
            continue;
        }
        let op = e
            .args
            .get("op_name")
            .and_then(|v| v.as_str())
            .unwrap_or("?");
        nodes.add(node, op, e.dur * 1e-6);
    }
    nodes
        .summary(runs)
        .ok_or_else(|| err("no kernel events in the timed runs".into()))
}

/// Seconds per node (with its op type), summed over runs.
#[derive(Debug, Clone, Default)]
pub struct NodeTimes(BTreeMap<String, (String, f64)>);

impl NodeTimes {
    /// Adds `seconds` to `node` (of type `op`).
    pub fn add(&mut self, node: &str, op: &str, seconds: f64) {
        match self.0.get_mut(node) {
            Some(e) => e.1 += seconds,
            None => {
                self.0.insert(node.to_string(), (op.to_string(), seconds));
            }
        }
    }

    /// Adds every node time of `other`.
    pub fn merge(&mut self, other: &NodeTimes) {
        for (node, (op, s)) in &other.0 {
            self.add(node, op, *s);
        }
    }

    /// The profile of these times taken as the sum of `runs` runs (None when nothing was timed).
    pub fn summary(&self, runs: usize) -> Option<OpProfile> {
        if self.0.is_empty() || runs == 0 {
            return None;
        }
        let per_run = |s: f64| s / runs as f64;
        let mut ops: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (op, s) in self.0.values() {
            let o = ops.entry(op).or_insert((0.0, 0));
            o.0 += s;
            o.1 += 1;
        }
        let mut by_op: Vec<(String, f64, usize)> = ops
            .into_iter()
            .map(|(op, (s, n))| (op.to_string(), per_run(s), n))
            .collect();
        by_op.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let mut top_nodes: Vec<(String, String, f64)> = self
            .0
            .iter()
            .map(|(n, (op, s))| (n.clone(), op.clone(), per_run(*s)))
            .collect();
        top_nodes.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        top_nodes.truncate(TOP_NODES);
        Some(OpProfile {
            runs,
            kernel_s: by_op.iter().map(|o| o.1).sum(),
            by_op,
            top_nodes,
        })
    }
}

impl OpProfile {
    /// A table: each op type's seconds per run and share, then the slowest nodes.
    pub fn table(&self, runtime: &str) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "{runtime}: kernel time {:.3} s per run (mean of {} timed run(s))\n  {:<24} {:>9} {:>7} {:>6}\n",
            self.kernel_s, self.runs, "op type", "s/run", "share", "nodes"
        );
        // The op types that make 99 % of the time, then the rest in one line.
        let mut shown = 0.0;
        let mut rest = (0.0, 0);
        for (op, t, n) in &self.by_op {
            if shown >= SHOWN_SHARE * self.kernel_s {
                rest = (rest.0 + t, rest.1 + 1);
                continue;
            }
            shown += t;
            let _ = writeln!(
                s,
                "  {op:<24} {t:>9.4} {:>6.1}% {n:>6}",
                100.0 * t / self.kernel_s
            );
        }
        if rest.1 > 0 {
            let _ = writeln!(
                s,
                "  {:<24} {:>9.4} {:>6.1}%",
                format!("({} other op types)", rest.1),
                rest.0,
                100.0 * rest.0 / self.kernel_s
            );
        }
        let _ = writeln!(s, "  slowest nodes:");
        for (node, op, t) in &self.top_nodes {
            let _ = writeln!(s, "  {t:>9.4} s  {op:<16} {node}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_the_timed_runs_per_op_type_and_node() {
        // Two runs: the first (warm-up) is left out with runs = 1.
        let json = r#"[
          {"cat":"Session","name":"model_loading_uri","ts":0,"dur":5},
          {"cat":"Session","name":"model_run","ts":10,"dur":100},
          {"cat":"Node","name":"a_kernel_time","ts":11,"dur":90,"args":{"op_name":"Conv"}},
          {"cat":"Session","name":"model_run","ts":200,"dur":100},
          {"cat":"Node","name":"a_fence_before","ts":201,"dur":1,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"a_kernel_time","ts":201,"dur":40,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"b_kernel_time","ts":242,"dur":20,"args":{"op_name":"Conv"}},
          {"cat":"Node","name":"c_kernel_time","ts":263,"dur":30,"args":{"op_name":"MatMul"}}
        ]"#;
        let p = parse_ort(json, "p.json", 1).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        let (op, t, n) = &p.by_op[0];
        assert!(op == "Conv" && close(*t, 60e-6) && *n == 2, "{:?}", p.by_op);
        let (op, t, n) = &p.by_op[1];
        assert!(
            op == "MatMul" && close(*t, 30e-6) && *n == 1,
            "{:?}",
            p.by_op
        );
        assert!(close(p.kernel_s, 90e-6));
        assert_eq!(p.top_nodes[0].0, "a");
        let both = parse_ort(json, "p.json", 2).unwrap();
        assert!(close(both.kernel_s, 90e-6));
        assert!(p.table("ort-cpu").contains("MatMul"));
    }

    #[test]
    fn a_wrong_file_is_named() {
        let e = parse_ort("{}", "p.json", 1).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("JSON event list"), "{e}");
        let e = parse_ort("[]", "p.json", 1).unwrap_err().to_string();
        assert!(e.contains("0 recorded run(s)"), "{e}");
    }
}
