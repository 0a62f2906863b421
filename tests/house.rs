//! The layout rules of the code base (issue 29, "the CLI house"): `src/main.rs` is only the
//! entry point, no source file grows past a size a reader can hold, and no two files of a crate
//! import each other, directly or round a circle. Plain std: the files are read as text.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Most lines of `src/main.rs`: parsing, dispatch and exit codes, nothing more.
const MAIN_MAX_LINES: usize = 250;
/// Most lines of any file under the command's `src/` (tests included): past this a file holds
/// more than one thing, and is split by what it owns. The member crates are not held to it yet
/// (exporters' tracer.rs and lint.rs are longer).
const FILE_MAX_LINES: usize = 700;
/// The library crates (their `src/lib.rs`), held to the no-circle rule with the binary.
const CRATES: [&str; 5] = [".", "models", "ops", "exporters", "cocoeval"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn line_count(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
        .lines()
        .count()
}

#[test]
fn main_rs_is_only_the_entry_point() {
    let n = line_count(&root().join("src/main.rs"));
    assert!(
        n <= MAIN_MAX_LINES,
        "src/main.rs has {n} lines (at most {MAIN_MAX_LINES}): a command's code belongs in src/commands/<command>.rs"
    );
}

#[test]
fn no_source_file_is_too_long() {
    let mut long = Vec::new();
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    {
        for f in files {
            let n = line_count(&f);
            if n > FILE_MAX_LINES {
                long.push(format!("{} ({n} lines)", f.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "files over {FILE_MAX_LINES} lines: {}",
        long.join(", ")
    );
}

/// A crate's modules, found from its root file by following `mod x;` declarations: module
/// path (`["check", "budgets"]`) → file.
fn modules(root_file: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(m: Vec<String>, f: &Path, dir: &Path, map: &mut BTreeMap<Vec<String>, PathBuf>) {
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        let tokens = tokenize(&code_only(&text));
        for w in tokens.windows(3) {
            if w[0] == "mod" && is_ident(&w[1]) && w[2] == ";" {
                let (a, b) = (
                    dir.join(format!("{}.rs", w[1])),
                    dir.join(&w[1]).join("mod.rs"),
                );
                let (file, child_dir) = if a.exists() {
                    (a, dir.join(&w[1]))
                } else {
                    (b, dir.join(&w[1]))
                };
                let mut child = m.clone();
                child.push(w[1].clone());
                walk(child, &file, &child_dir, map);
            }
        }
        map.insert(m, f.to_path_buf());
    }
    let mut map = BTreeMap::new();
    let dir = root_file.parent().expect("root file in a folder");
    walk(Vec::new(), root_file, dir, &mut map);
    map
}

/// The crate roots held to the no-circle rule: each library, and the binary.
fn crate_roots() -> Vec<PathBuf> {
    let mut roots = vec![root().join("src/main.rs")];
    roots.extend(CRATES.iter().map(|c| root().join(c).join("src/lib.rs")));
    roots
}

/// Strips comments and the contents of string and char literals (a path in a doc sentence or
/// an error message is not an import).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) && !ident(b, i) {
            // Raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|h| b.get(j + 1 + h) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a): skip literals only.
            let close = if b.get(i + 1) == Some(&b'\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == b'\'')
            } else {
                let ch_len = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + ch_len) == Some(&b'\'')).then_some(i + 1 + ch_len)
            };
            match close {
                Some(j) => {
                    out.push_str("' '");
                    i = j + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let ch = text[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// A path a file names: where (`scope`, the file's module or an inline module in it), the
/// path itself, and whether it is a re-export (`pub use`) under `alias` (its last segment, or
/// the `as` name).
struct Named {
    scope: Vec<String>,
    path: Vec<String>,
    reexport: bool,
    alias: Option<String>,
}

/// Every path a file of module `file_mod` names: `use` trees expanded (`use a::{b, c::d}` gives
/// `a::b`, `a::c::d`) and paths in code (`crate::x::y`, `super::z`).
fn paths(code: &str, file_mod: &[String]) -> Vec<Named> {
    let mut out = Vec::new();
    let tokens = tokenize(code);
    let mut scope = file_mod.to_vec();
    // Inline modules (`mod tests { .. }`) open at these brace depths.
    let mut inline: Vec<usize> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last() == Some(&depth) {
                    inline.pop();
                    scope.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                scope.push(tokens[i + 1].clone());
                inline.push(depth);
                depth += 1;
                i += 3;
                continue;
            }
            _ => {}
        }
        if tokens[i] == "use" {
            let reexport = i > 0
                && (tokens[i - 1] == "pub"
                    || (i > 3 && tokens[i - 1] == ")" && tokens[i - 4] == "pub"));
            let mut j = i + 1;
            let mut found = Vec::new();
            expand_use(&tokens, &mut j, &mut Vec::new(), &mut found);
            for (path, alias) in found {
                let alias = alias.or_else(|| path.last().cloned());
                out.push(Named {
                    scope: scope.clone(),
                    path,
                    reexport,
                    alias,
                });
            }
            i = j;
            continue;
        }
        if matches!(tokens[i].as_str(), "crate" | "super" | "self")
            && tokens.get(i + 1).is_some_and(|t| t == "::")
            && (i == 0 || tokens[i - 1] != "::")
        {
            let mut p = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::") {
                match tokens.get(j + 1) {
                    Some(t) if is_ident(t) => {
                        p.push(t.clone());
                        j += 2;
                    }
                    _ => break,
                }
            }
            out.push(Named {
                scope: scope.clone(),
                path: p,
                reexport: false,
                alias: None,
            });
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

fn tokenize(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cs: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_alphanumeric() || c == '_' {
            let s = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push(cs[s..i].iter().collect());
        } else if c == ':' && cs.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Expands one use tree starting at `tokens[*j]`, up to its `;`, `,` or `}`: each leaf path
/// with its `as` name, if any (a glob `*` leaves its module path, unnamed).
fn expand_use(
    tokens: &[String],
    j: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    let depth = prefix.len();
    let mut alias = None;
    loop {
        match tokens.get(*j).map(String::as_str) {
            None | Some(";") | Some(",") | Some("}") => {
                if prefix.len() > depth || (depth > 0 && alias.is_some()) {
                    out.push((prefix.clone(), alias));
                }
                break;
            }
            Some("::") => *j += 1,
            Some("{") => {
                *j += 1;
                loop {
                    let mut p = prefix.clone();
                    expand_use(tokens, j, &mut p, out);
                    match tokens.get(*j).map(String::as_str) {
                        Some(",") => *j += 1,
                        Some("}") => {
                            *j += 1;
                            break;
                        }
                        _ => break,
                    }
                }
                break;
            }
            Some("as") => {
                alias = tokens.get(*j + 1).cloned();
                *j += 2;
            }
            Some("*") => {
                // A glob names the module itself (`alias` none: nothing re-exported by name).
                *j += 1;
                out.push((prefix.clone(), Some("*".into())));
                prefix.truncate(depth);
                return;
            }
            Some(t) => {
                prefix.push(t.to_string());
                *j += 1;
            }
        }
    }
    prefix.truncate(depth);
}

/// The crate-absolute form of a path named in module `scope`, when it points into the crate.
fn absolute(
    scope: &[String],
    path: &[String],
    mods: &BTreeMap<Vec<String>, PathBuf>,
) -> Option<Vec<String>> {
    let mut at: Vec<String> = scope.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                at.pop()?;
                rest = &rest[1..];
            }
        }
        // A child module named from its parent (`use budgets::Budgets;` in check/mod.rs).
        Some(first) => {
            let mut child = scope.to_vec();
            child.push(first.to_string());
            if !mods.contains_key(&child) {
                return None;
            }
        }
        None => return None,
    }
    at.extend(rest.iter().cloned());
    Some(at)
}

/// Re-exports: module → name → the crate-absolute path it stands for.
type Aliases = BTreeMap<Vec<String>, BTreeMap<String, Vec<String>>>;

/// The file module an absolute path lands in: the longest module prefix that is a file, seen
/// through re-exports (`crate::Weights` lands where `Weights` is defined, not in lib.rs).
fn land(
    mut abs: Vec<String>,
    mods: &BTreeMap<Vec<String>, PathBuf>,
    aliases: &Aliases,
) -> Vec<String> {
    for _ in 0..16 {
        let k = (0..=abs.len())
            .rev()
            .find(|&k| mods.contains_key(&abs[..k]))
            .unwrap_or(0);
        let m = abs[..k].to_vec();
        match abs.get(k).and_then(|seg| aliases.get(&m)?.get(seg)) {
            Some(target) if *target != abs[..=k] => {
                let mut next = target.clone();
                next.extend(abs[k + 1..].iter().cloned());
                abs = next;
            }
            _ => return m,
        }
    }
    abs
}

/// The file module a (possibly inline) module belongs to.
fn file_of(scope: &[String], mods: &BTreeMap<Vec<String>, PathBuf>) -> Vec<String> {
    let k = (0..=scope.len())
        .rev()
        .find(|&k| mods.contains_key(&scope[..k]))
        .unwrap_or(0);
    scope[..k].to_vec()
}

/// Import edges between the files of one crate. Neither a file's own `mod x;` declarations
/// nor its re-exports (`pub use`) are edges: declaring a child, or showing its items at the
/// crate's face, is not depending on it; a path through a re-export counts where it lands.
fn edges(root_file: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mods = modules(root_file);
    let mut named = Vec::new();
    for (m, f) in &mods {
        let text =
            std::fs::read_to_string(f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        named.extend(paths(&code_only(&text), m));
    }
    let mut aliases = Aliases::new();
    for n in named.iter().filter(|n| n.reexport) {
        if let (Some(abs), Some(alias)) = (absolute(&n.scope, &n.path, &mods), &n.alias) {
            if alias != "*" {
                aliases
                    .entry(file_of(&n.scope, &mods))
                    .or_default()
                    .insert(alias.clone(), abs);
            }
        }
    }
    let mut g: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> =
        mods.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for n in named.iter().filter(|n| !n.reexport) {
        if let Some(abs) = absolute(&n.scope, &n.path, &mods) {
            let (from, to) = (file_of(&n.scope, &mods), land(abs, &mods, &aliases));
            if from != to {
                g.entry(from).or_default().insert(to);
            }
        }
    }
    g
}

/// A circle in the graph, if there is one.
fn find_cycle(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        n: &Vec<String>,
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in g.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == m).expect("on stack");
                    let mut c = stack[at..].to_vec();
                    c.push(m.clone());
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            let mut stack = Vec::new();
            if let Some(c) = visit(n, g, &mut state, &mut stack) {
                return Some(c);
            }
        }
    }
    None
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_import_circle_between_files() {
    let mut circles = Vec::new();
    for r in crate_roots() {
        let mods = modules(&r);
        // Every crate here has several files: finding one means the `mod` walk failed.
        assert!(mods.len() > 1, "{}: no modules found", r.display());
        if let Some(cycle) = find_cycle(&edges(&r)) {
            let names: Vec<String> = cycle.iter().map(|m| show(m)).collect();
            circles.push(format!("{}: {}", r.display(), names.join(" → ")));
        }
    }
    assert!(circles.is_empty(), "import circles: {}", circles.join("; "));
}

#[test]
fn the_cycle_finder_sees_a_circle() {
    // The checker itself: a two-file circle and a group import are found.
    let code = code_only("use super::{a::X, b as B};\nfn f() { crate::c::d(); \"crate::e::f\"; }");
    let p: Vec<Vec<String>> = paths(&code, &[]).into_iter().map(|n| n.path).collect();
    let path = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert!(p.contains(&path("super::a::X")), "{p:?}");
    assert!(p.contains(&path("super::b")), "{p:?}");
    assert!(p.contains(&path("crate::c::d")), "{p:?}");
    assert!(!p.iter().any(|x| x.contains(&"e".to_string())), "{p:?}");
    let mut g = BTreeMap::new();
    let (a, b) = (vec!["a".to_string()], vec!["b".to_string()]);
    g.insert(a.clone(), BTreeSet::from([b.clone()]));
    g.insert(b.clone(), BTreeSet::from([a.clone()]));
    assert!(find_cycle(&g).is_some());
    g.insert(b, BTreeSet::new());
    assert!(find_cycle(&g).is_none());
}
