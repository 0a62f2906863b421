//! A small writer of protobuf text format, the syntax of Triton's `config.pbtxt`: fields,
//! nested messages and lists, strings escaped. It writes; Triton's own `ModelConfig` parser is
//! what the tests read the result back with.

use std::fmt::Write;

/// A message being written, one field per line, nested messages indented.
#[derive(Default)]
pub struct Message {
    text: String,
    indent: usize,
}

/// Quotes and escapes a string as protobuf text format does.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Message {
    /// An empty top-level message.
    pub fn new() -> Self {
        Self::default()
    }

    fn line(&mut self, s: &str) {
        let _ = writeln!(self.text, "{:width$}{s}", "", width = 2 * self.indent);
    }

    /// A comment line (`# ...`).
    pub fn comment(&mut self, s: &str) -> &mut Self {
        for l in s.lines() {
            self.line(&format!("# {l}"));
        }
        self
    }

    /// A string field.
    pub fn string(&mut self, key: &str, value: &str) -> &mut Self {
        self.line(&format!("{key}: {}", quote(value)));
        self
    }

    /// A field written as is: a number or an enum value.
    pub fn raw(&mut self, key: &str, value: impl std::fmt::Display) -> &mut Self {
        self.line(&format!("{key}: {value}"));
        self
    }

    /// A repeated number field written as a list (`dims: [ 3, -1, -1 ]`).
    pub fn list(&mut self, key: &str, values: &[i64]) -> &mut Self {
        let v: Vec<String> = values.iter().map(i64::to_string).collect();
        self.line(&format!("{key}: [ {} ]", v.join(", ")));
        self
    }

    /// A nested message.
    pub fn message(&mut self, key: &str, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.line(&format!("{key} {{"));
        self.indent += 1;
        body(self);
        self.indent -= 1;
        self.line("}");
        self
    }

    /// A `map<string, string>` entry (`key { key: "k" value: "v" }`).
    pub fn map_entry(&mut self, key: &str, k: &str, v: &str) -> &mut Self {
        self.line(&format!(
            "{key} {{ key: {} value: {} }}",
            quote(k),
            quote(v)
        ));
        self
    }

    /// Triton's `parameters` entry (`map<string, ModelParameter>`).
    pub fn parameter(&mut self, k: &str, v: &str) -> &mut Self {
        self.line(&format!(
            "parameters {{ key: {} value {{ string_value: {} }} }}",
            quote(k),
            quote(v)
        ));
        self
    }

    /// The text written.
    pub fn finish(&self) -> String {
        self.text.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_and_escaped() {
        let mut m = Message::new();
        m.string("name", "a\"b")
            .raw("max_batch_size", 4)
            .message("input", |i| {
                i.list("dims", &[3, -1]);
            })
            .parameter("k", "v");
        assert_eq!(
            m.finish(),
            "name: \"a\\\"b\"\nmax_batch_size: 4\ninput {\n  dims: [ 3, -1 ]\n}\nparameters { key: \"k\" value { string_value: \"v\" } }\n"
        );
    }
}
