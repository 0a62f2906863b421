//! A test-only writer of PyTorch checkpoints in torch.save's zip format (pickle protocol 2,
//! `_rebuild_tensor_v2`, one storage entry per tensor): full-size checkpoints for end-to-end
//! tests without PyTorch, and hostile variants of them. tests/pth_import.rs checks that what it
//! writes reads back like the real `torch.save` fixtures.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

/// What a state-dict entry holds.
#[derive(Clone, Copy)]
pub enum Value<'a> {
    /// A float32 tensor, contiguous.
    F32(&'a [usize], &'a [f32]),
    /// An int64 tensor, contiguous (index buffers).
    I64(&'a [usize], &'a [i64]),
    /// A tensor whose storage has only this many of its elements (a damaged file).
    Short(&'a [usize], &'a [f32], usize),
    /// An int where a tensor belongs.
    Int(i64),
    /// A call of `module.name(arg)`: what a malicious pickle does (`os.system("…")`).
    Call(&'a str, &'a str, &'a str),
}

/// A pickle under construction (protocol 2 opcodes).
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.op(b"c");
        self.0
            .extend_from_slice(format!("{module}\n{name}\n").as_bytes());
        self
    }
    fn string(&mut self, s: &str) -> &mut Self {
        self.op(b"X");
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn int(&mut self, v: i64) -> &mut Self {
        // LONG1: the int as little-endian two's complement bytes.
        self.op(&[0x8a, 8]);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn ints(&mut self, v: &[usize]) -> &mut Self {
        self.op(b"(");
        for &x in v {
            self.int(x as i64);
        }
        self.op(b"t")
    }
    fn ordered_dict(&mut self) -> &mut Self {
        self.global("collections", "OrderedDict").op(b")R")
    }
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Writes `entries` as a torch.save zip checkpoint at `path`, as detectron2 lays it out
/// (`{"model": state_dict, "iteration": 0}`) when `detectron2`, else a bare state dict.
/// `byteorder` is the archive's declared byte order ("little" as torch writes it).
pub fn write(path: &Path, entries: &[(&str, Value)], detectron2: bool, byteorder: &str) {
    let mut p = Pickle(Vec::new());
    p.op(&[0x80, 2]);
    if detectron2 {
        p.op(b"}(").string("model");
    }
    p.ordered_dict().op(b"(");
    let mut storages: Vec<Vec<u8>> = Vec::new();
    for (key, value) in entries {
        p.string(key);
        match value {
            Value::F32(..) | Value::Short(..) | Value::I64(..) => {
                let (shape, bytes, storage): (&[usize], Vec<u8>, &str) = match value {
                    Value::F32(shape, data) | Value::Short(shape, data, _) => {
                        let numel: usize = shape.iter().product();
                        assert_eq!(numel, data.len(), "{key}");
                        let kept = match value {
                            Value::Short(_, _, n) => *n,
                            _ => numel,
                        };
                        let b = data[..kept].iter().flat_map(|v| v.to_le_bytes()).collect();
                        (shape, b, "FloatStorage")
                    }
                    Value::I64(shape, data) => {
                        let b = data.iter().flat_map(|v| v.to_le_bytes()).collect();
                        (shape, b, "LongStorage")
                    }
                    _ => unreachable!("matched above"),
                };
                let numel: usize = shape.iter().product();
                let id = storages.len();
                storages.push(bytes);
                p.global("torch._utils", "_rebuild_tensor_v2").op(b"(");
                // Persistent id ('storage', FloatStorage / LongStorage, key, location, numel).
                p.op(b"(")
                    .string("storage")
                    .global("torch", storage)
                    .string(&id.to_string())
                    .string("cpu")
                    .int(numel as i64)
                    .op(b"tQ");
                p.int(0).ints(shape).ints(&strides(shape)).op(&[0x89]);
                p.ordered_dict().op(b"tR");
            }
            Value::Int(v) => {
                p.int(*v);
            }
            Value::Call(module, name, arg) => {
                p.global(module, name).op(b"(").string(arg).op(b"tR");
            }
        }
    }
    p.op(b"u");
    if detectron2 {
        p.string("iteration").int(0).op(b"u");
    }
    p.op(b".");
    let file = std::fs::File::create(path).expect("creating the checkpoint");
    let mut z = zip::ZipWriter::new(std::io::BufWriter::new(file));
    let stored = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let mut put = |name: &str, bytes: &[u8]| {
        z.start_file(format!("archive/{name}"), stored)
            .expect("a zip entry");
        z.write_all(bytes).expect("writing a zip entry");
    };
    put("data.pkl", &p.0);
    put("byteorder", byteorder.as_bytes());
    for (i, s) in storages.iter().enumerate() {
        put(&format!("data/{i}"), s);
    }
    put("version", b"3\n");
    z.finish().expect("finishing the zip");
}

/// Writes a zip bomb at `path`: a release archive whose one member `member` (32 MiB of zeros,
/// deflated to a few tens of KiB) declares far more than the archive holds.
pub fn write_zip_bomb(path: &Path, member: &str) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    z.start_file(member, opts).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..32 {
        z.write_all(&zeros).unwrap();
    }
    z.finish().unwrap();
}
