//! The function an attribute is put on, parsed into the parts the expansion needs.
//!
//! syn 2 parses a body's inner attributes (`#![allow(..)]`) into `ItemFn::attrs` together with
//! the outer ones; they are partitioned here (as tracing-attributes does) so that the
//! expansion can put them back first in the body, the only place they are allowed.
//!
//! When syn cannot parse the body (syntax newer than this syn, or a body being typed in an
//! editor), the function is still expanded with its body as unparsed tokens, as
//! tracing-attributes' `instrument_speculative` does: valid code keeps compiling, and for
//! invalid code rustc reports its own error at the user's tokens.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{token, AttrStyle, Attribute, ItemFn, Signature, Stmt, Visibility};

/// A function with a body.
pub struct Func {
    /// Attributes before the function (`#[must_use]`, doc comments, ...).
    pub outer_attrs: Vec<Attribute>,
    /// Attributes inside the body (`#![allow(..)]`), which must stay first in it.
    pub inner_attrs: Vec<Attribute>,
    /// The visibility.
    pub vis: Visibility,
    /// The signature.
    pub sig: Signature,
    /// The body's braces (their spans are the user's).
    pub brace: token::Brace,
    /// The body, without its inner attributes.
    pub body: Body,
}

/// A function's statements.
pub enum Body {
    /// Parsed by syn.
    Stmts(Vec<Stmt>),
    /// Tokens syn could not parse as statements, passed through for rustc to parse.
    Tokens(TokenStream),
}

impl Func {
    /// Parses `item` as a function with a body, or says why it is not one; `attr` names the
    /// attribute in messages (`#[timed]`).
    pub fn parse(item: TokenStream, attr: &str) -> syn::Result<Func> {
        if let Ok(f) = syn::parse2::<ItemFn>(item.clone()) {
            return Ok(Func::from_syn(f));
        }
        if let Ok(f) = syn::parse2::<Func>(item.clone()) {
            return Ok(f);
        }
        if let Ok(f) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
            if f.default.is_none() {
                return Err(syn::Error::new(
                    f.sig.span(),
                    format!(
                        "{attr} needs a function body to measure; put it on the \
                         implementations of this trait method, or give the method a default body"
                    ),
                ));
            }
        }
        let span = syn::parse2::<syn::Item>(item)
            .map(|i| item_span(&i))
            .unwrap_or_else(|_| Span::call_site());
        Err(syn::Error::new(
            span,
            format!("{attr} applies to functions only (free fns, methods, async fns)"),
        ))
    }

    fn from_syn(f: ItemFn) -> Func {
        let (outer_attrs, inner_attrs) = f
            .attrs
            .into_iter()
            .partition(|a| matches!(a.style, AttrStyle::Outer));
        Func {
            outer_attrs,
            inner_attrs,
            vis: f.vis,
            sig: f.sig,
            brace: f.block.brace_token,
            body: Body::Stmts(f.block.stmts),
        }
    }

    /// The body's leading items and the rest of its statements (see [`split_items`]); a
    /// body of unparsed tokens is all "rest".
    pub fn items_and_rest(&self) -> (TokenStream, TokenStream) {
        match &self.body {
            Body::Stmts(stmts) => {
                let (items, rest) = split_items(stmts);
                (quote!(#(#items)*), quote!(#(#rest)*))
            }
            Body::Tokens(tokens) => (TokenStream::new(), tokens.clone()),
        }
    }

    /// The body's statements (without its inner attributes), as tokens.
    pub fn stmts(&self) -> TokenStream {
        match &self.body {
            Body::Stmts(stmts) => quote!(#(#stmts)*),
            Body::Tokens(tokens) => tokens.clone(),
        }
    }

    /// `tokens` in the body's braces.
    pub fn braced(&self, tokens: TokenStream) -> TokenStream {
        let mut out = TokenStream::new();
        self.brace.surround(&mut out, |out| out.extend(tokens));
        out
    }
}

/// The speculative parse: attributes, visibility, signature, then the body as tokens.
impl Parse for Func {
    fn parse(input: ParseStream) -> syn::Result<Func> {
        let outer_attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let tokens: TokenStream = content.parse()?;
        Ok(Func {
            outer_attrs,
            inner_attrs,
            vis,
            sig,
            brace,
            body: Body::Tokens(tokens),
        })
    }
}

/// A block's statements split into its leading items (`fn`, `use`, `struct`, ...) and the
/// rest. An expansion puts its own statements between the two, so that the user's items stay
/// before any statement (as `clippy::items_after_statements` wants) without changing meaning:
/// an item is visible in the whole block wherever it stands.
pub fn split_items(stmts: &[Stmt]) -> (&[Stmt], &[Stmt]) {
    let n = stmts
        .iter()
        .take_while(|s| matches!(s, Stmt::Item(_)))
        .count();
    stmts.split_at(n)
}

/// The span of an item's keyword, for "not a function" errors.
fn item_span(item: &syn::Item) -> Span {
    match item {
        syn::Item::Struct(i) => i.struct_token.span,
        syn::Item::Enum(i) => i.enum_token.span,
        syn::Item::Const(i) => i.const_token.span,
        syn::Item::Static(i) => i.static_token.span,
        syn::Item::Impl(i) => i.impl_token.span,
        syn::Item::Trait(i) => i.trait_token.span,
        syn::Item::Mod(i) => i.mod_token.span,
        syn::Item::Type(i) => i.type_token.span,
        syn::Item::Use(i) => i.use_token.span,
        other => other.span(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_attributes_are_kept_apart() {
        let f = Func::parse(
            quote! {
                #[must_use]
                fn f() -> u32 {
                    #![allow(unused_variables)]
                    let x = 3;
                    5
                }
            },
            "#[timed]",
        )
        .ok()
        .unwrap();
        assert_eq!(f.outer_attrs.len(), 1);
        assert_eq!(f.inner_attrs.len(), 1);
        assert!(matches!(&f.body, Body::Stmts(s) if s.len() == 2));
    }

    #[test]
    fn a_body_syn_cannot_parse_is_kept_as_tokens() {
        let f = Func::parse(
            quote! {
                fn f() -> u32 {
                    #![allow(unused)]
                    let x = ;
                    5
                }
            },
            "#[timed]",
        )
        .ok()
        .unwrap();
        assert_eq!(f.inner_attrs.len(), 1);
        match &f.body {
            Body::Tokens(t) => assert_eq!(t.to_string(), "let x = ; 5"),
            Body::Stmts(_) => panic!("parsed"),
        }
    }

    #[test]
    fn says_what_is_not_a_function() {
        let e = |item: TokenStream| Func::parse(item, "#[timed]").err().unwrap().to_string();
        assert!(e(quote!(
            struct S;
        ))
        .contains("functions only"));
        assert!(e(quote!(
            fn f(&self);
        ))
        .contains("body"));
    }
}
