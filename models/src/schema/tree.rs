//! The schema's building blocks: a parameter (key, shape, buffer or not), the dotted key paths
//! they are named by, and the visit that flattens a typed tree into state_dict order.

/// Whether a tensor is a trainable parameter, a buffer, or a second name of another tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// An `nn.Parameter`.
    Parameter,
    /// A registered buffer (FrozenBN statistics and affine terms).
    Buffer,
    /// An int64 buffer whose value the model defines from the config (Swin's
    /// `relative_position_index`): checkpoints carry it, loaders check it equals
    /// [`SchemaEntry::fixed_value`], and the model computes it itself.
    IndexBuffer,
    /// The same tensor as `canonical`, registered under a second module path.
    Alias {
        /// The canonical key.
        canonical: String,
    },
}

/// One checkpoint tensor: its key and shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Checkpoint key, e.g. `backbone.res2.0.conv1.weight`.
    pub key: String,
    /// Shape in elements.
    pub shape: Vec<usize>,
    /// Parameter, buffer or index buffer (never an alias).
    pub kind: EntryKind,
}

/// One row of the flat schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaEntry {
    /// Checkpoint key.
    pub key: String,
    /// Shape in elements.
    pub shape: Vec<usize>,
    /// Parameter, buffer or alias.
    pub kind: EntryKind,
}

/// Builds keys from module paths.
#[derive(Clone)]
pub(super) struct Path(String);

impl Path {
    pub(super) fn root(name: &str) -> Self {
        Path(name.to_string())
    }
    pub(super) fn child(&self, name: impl std::fmt::Display) -> Self {
        if self.0.is_empty() {
            Path(name.to_string())
        } else {
            Path(format!("{}.{name}", self.0))
        }
    }
    pub(super) fn param(&self, name: &str, shape: &[usize]) -> Param {
        Param {
            key: self.child(name).0,
            shape: shape.to_vec(),
            kind: EntryKind::Parameter,
        }
    }
    pub(super) fn buffer(&self, name: &str, shape: &[usize]) -> Param {
        Param {
            kind: EntryKind::Buffer,
            ..self.param(name, shape)
        }
    }
    pub(super) fn index_buffer(&self, name: &str, shape: &[usize]) -> Param {
        Param {
            kind: EntryKind::IndexBuffer,
            ..self.param(name, shape)
        }
    }
}

impl SchemaEntry {
    /// Whether the tensor holds floats (parameters and float buffers; aliases of them).
    pub fn is_float(&self) -> bool {
        !matches!(self.kind, EntryKind::IndexBuffer)
    }
}

impl Param {
    /// A float parameter or buffer with this key and shape (for reading tensors by name).
    pub fn float(key: &str, shape: &[usize]) -> Self {
        Param {
            key: key.to_string(),
            shape: shape.to_vec(),
            kind: EntryKind::Parameter,
        }
    }
}

/// Receives tensors in state_dict order.
pub(super) trait Visit {
    fn visit(&self, out: &mut Vec<SchemaEntry>);
}

impl Visit for Param {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        out.push(SchemaEntry {
            key: self.key.clone(),
            shape: self.shape.clone(),
            kind: self.kind.clone(),
        });
    }
}

impl<T: Visit> Visit for [T] {
    fn visit(&self, out: &mut Vec<SchemaEntry>) {
        self.iter().for_each(|t| t.visit(out));
    }
}

macro_rules! visit_fields {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl Visit for $ty {
            fn visit(&self, out: &mut Vec<SchemaEntry>) {
                $( self.$field.visit(out); )*
            }
        }
    };
}

pub(super) use visit_fields;
