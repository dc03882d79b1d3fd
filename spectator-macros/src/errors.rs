//! The one error collector of the crate: every check pushes into it, so that all errors of one
//! macro invocation are reported together (as serde_derive's `Ctxt` does).

use std::fmt::Display;

use proc_macro2::Span;

/// Errors gathered while checking one invocation.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Adds an error at `span`.
    pub fn push(&mut self, span: Span, msg: impl Display) {
        self.add(syn::Error::new(span, msg));
    }

    /// Adds an error that is already built (it may hold several messages).
    pub fn add(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `value` if nothing was pushed, else every error pushed.
    pub fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            None => Ok(value),
            Some(e) => Err(e),
        }
    }
}
