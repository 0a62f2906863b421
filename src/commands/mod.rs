//! Subcommands that own their arguments and wiring (the rest still lives in main.rs; a command
//! moves here when it is next changed).

pub mod check;
pub mod convert;
pub mod eval;
pub mod predict;
