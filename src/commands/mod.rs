//! The commands, one file each with its arguments (`export` is the default action), and the
//! argument groups they share (`args`).

pub mod args;
pub mod bench;
pub mod bench_ops;
pub mod check;
pub mod config;
pub mod convert;
pub mod doctor;
pub mod eval;
pub mod explain;
pub mod export;
pub mod init_weights;
pub mod lint;
pub mod matrix;
pub mod names;
pub mod ops_library;
pub mod predict;
pub mod run;
pub mod triton;
