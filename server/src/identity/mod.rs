//! Who a connection is.
//!
//! Placeholder module root; filled in by the resume work.

pub mod token;

pub use token::ResumeToken;
