//! Focus-DETR's two special operations as first-class ops: each is declared once in [`decl`]
//! (name, domain, version, inputs and outputs), and its CPU kernel lives beside it ([`msda`],
//! [`topk`]). The exporter writes nodes from the declarations; the runtimes register the kernels
//! under the same names.

pub mod decl;
pub mod msda;
pub mod topk;

/// Errors of the kernels: inputs that do not fit the op's declaration.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// An input's shape or value does not match what the op needs.
    #[error("{op}: input `{input}`: {message}")]
    Input {
        /// The op type.
        op: &'static str,
        /// The input's name in the declaration.
        input: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
    /// The output buffer a host passed does not fit the inputs.
    #[error("{op}: output: {message}")]
    Output {
        /// The op type.
        op: &'static str,
        /// What is wrong and what was expected.
        message: String,
    },
}
