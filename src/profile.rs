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
    /// (model part, seconds per run, nodes), slowest first: nodes grouped by [`module_of`] their
    /// name, so the backbone stages, neck, encoder and decoder can be compared across runtimes.
    #[serde(default)]
    pub by_module: Vec<(String, f64, usize)>,
}

/// The group of nodes whose names carry no module path: those a runtime's optimiser made or
/// renamed (ONNX Runtime's NCHWc convolutions, for one).
pub const NO_MODULE: &str = "(no module path)";

/// The model part a node belongs to, from its name: ONNX node names are module paths followed by
/// `/` and the op (`transformer.encoder.layers.3.attentions.1/MatMul_12`), and the part is the
/// path's first two components under `backbone` and `transformer` (`backbone.res2`,
/// `transformer.encoder`) and its first elsewhere (`neck`, `postprocess`). Runtimes that fuse or
/// rename nodes keep or extend the name before the `/`; a name without one is [`NO_MODULE`].
pub fn module_of(node: &str) -> &str {
    let Some((path, _)) = node.split_once('/') else {
        return NO_MODULE;
    };
    let depth = match path.split('.').next() {
        Some("backbone" | "transformer") => 2,
        _ => 1,
    };
    match path.match_indices('.').nth(depth - 1) {
        Some((end, _)) => &path[..end],
        None => path,
    }
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

    /// (group, seconds per run, nodes) with the nodes grouped by `key(node, op)`, slowest first
    /// (ties by name, so tables are deterministic).
    fn grouped<'a>(
        &'a self,
        runs: usize,
        key: impl Fn(&'a str, &'a str) -> &'a str,
    ) -> Vec<(String, f64, usize)> {
        let mut groups: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for (node, (op, s)) in &self.0 {
            let g = groups.entry(key(node, op)).or_insert((0.0, 0));
            g.0 += s;
            g.1 += 1;
        }
        let mut rows: Vec<(String, f64, usize)> = groups
            .into_iter()
            .map(|(g, (s, n))| (g.to_string(), s / runs as f64, n))
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        rows
    }

    /// The profile of these times taken as the sum of `runs` runs (None when nothing was timed).
    pub fn summary(&self, runs: usize) -> Option<OpProfile> {
        if self.0.is_empty() || runs == 0 {
            return None;
        }
        let per_run = |s: f64| s / runs as f64;
        let by_op = self.grouped(runs, |_, op| op);
        let mut top_nodes: Vec<(String, String, f64)> = self
            .0
            .iter()
            .map(|(n, (op, s))| (n.clone(), op.clone(), per_run(*s)))
            .collect();
        top_nodes.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
        top_nodes.truncate(TOP_NODES);
        let by_module = self.grouped(runs, |node, _| module_of(node));
        Some(OpProfile {
            runs,
            kernel_s: by_op.iter().map(|o| o.1).sum(),
            by_op,
            top_nodes,
            by_module,
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
        if !self.by_module.is_empty() {
            let _ = writeln!(
                s,
                "  {:<32} {:>9} {:>7} {:>6}",
                "model part", "s/run", "share", "nodes"
            );
            for (m, t, n) in &self.by_module {
                let _ = writeln!(
                    s,
                    "  {m:<32} {t:>9.4} {:>6.1}% {n:>6}",
                    100.0 * t / self.kernel_s
                );
            }
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
    fn nodes_are_grouped_by_the_model_part_their_name_carries() {
        assert_eq!(module_of("backbone.res2/Conv_8.matmatmul"), "backbone.res2");
        assert_eq!(
            module_of("transformer.encoder.layers.3.attentions.1/MatMul_12"),
            "transformer.encoder"
        );
        assert_eq!(module_of("transformer.alpha/Mul_3"), "transformer.alpha");
        assert_eq!(module_of("backbone/Conv_1"), "backbone");
        assert_eq!(module_of("neck.convs.0/Conv_2"), "neck");
        assert_eq!(module_of("v39_nchwc"), NO_MODULE);
        let mut t = NodeTimes::default();
        t.add("backbone.res2/Conv_1", "Conv", 2.0);
        t.add("backbone.res2/Relu_2", "Relu", 1.0);
        t.add("transformer.decoder.layers.0/MatMul_3", "MatMul", 4.0);
        t.add("v1_nchwc", "Conv", 0.5);
        let p = t.summary(2).unwrap();
        assert_eq!(
            p.by_module,
            [
                ("transformer.decoder".to_string(), 2.0, 1),
                ("backbone.res2".to_string(), 1.5, 2),
                (NO_MODULE.to_string(), 0.25, 1),
            ]
        );
        assert!(p.table("tract").contains("backbone.res2"));
    }

    #[test]
    fn a_wrong_file_is_named() {
        let e = parse_ort("{}", "p.json", 1).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("JSON event list"), "{e}");
        let e = parse_ort("[]", "p.json", 1).unwrap_err().to_string();
        assert!(e.contains("0 recorded run(s)"), "{e}");
    }
}
