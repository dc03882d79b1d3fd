//! Parsing of macro arguments into a small model.
//!
//! Every macro takes the same argument language:
//!
//! ```text
//! args  := [ name ] { "," item } [ "," ]
//! name  := string literal                       e.g. "server.requestLatency"
//! item  := key "=" string literal                e.g. statusCode = "200", "http.method" = "GET"
//!        | flag                                  e.g. percentiles
//! key   := identifier | string literal
//! ```
//!
//! `time!` additionally ends with a block, and `metrics!` wraps the same list in
//! `static NAME: Type = <args>;` declarations. Parsing only builds the model; the Atlas rules
//! are checked by [`crate::validate`].

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Attribute, Block, Ident, Lit, LitStr, Path, Token, Visibility};

/// A tag key as written: an identifier (`statusCode`, raw identifiers lose their `r#`) or a
/// string literal (`"http.method"`).
#[derive(Clone)]
pub struct Key {
    /// The key's text.
    pub text: String,
    /// Where the key was written.
    pub span: Span,
}

/// One `key = "value"` pair.
#[derive(Clone)]
pub struct Tag {
    /// The key.
    pub key: Key,
    /// The value literal.
    pub value: LitStr,
}

/// The parsed argument list of one meter.
#[derive(Clone, Default)]
pub struct MeterArgs {
    /// The metric name, when given (it must come first).
    pub name: Option<LitStr>,
    /// The tags in the order written.
    pub tags: Vec<Tag>,
    /// Bare identifiers such as `percentiles`.
    pub flags: Vec<Ident>,
}

/// Where an argument list stops.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// At the end of the input (attribute arguments).
    Input,
    /// Before a `;` (a `metrics!` declaration).
    Semi,
    /// At a trailing `{ block }` (`time!`).
    Block,
}

/// Parses `[name] {, item}` until `end`. Errors from several items are combined.
fn parse_list(input: ParseStream, end: End) -> syn::Result<MeterArgs> {
    let mut args = MeterArgs::default();
    let mut first = true;
    loop {
        if input.is_empty() || (end == End::Semi && input.peek(Token![;])) {
            return Ok(args);
        }
        if end == End::Block && input.peek(syn::token::Brace) {
            return Ok(args);
        }
        parse_item(input, &mut args, first)?;
        first = false;
        if input.is_empty() || (end == End::Semi && input.peek(Token![;])) {
            return Ok(args);
        }
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            continue;
        }
        let what = match end {
            End::Input => "`,` between arguments",
            End::Semi => "`,` between arguments or `;` after the declaration",
            End::Block => "`,` between arguments",
        };
        return Err(input.error(format!("expected {what}")));
    }
}

/// Parses one name, tag or flag.
fn parse_item(input: ParseStream, args: &mut MeterArgs, first: bool) -> syn::Result<()> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        if input.peek(Token![=]) {
            let key = Key {
                text: lit.value(),
                span: lit.span(),
            };
            return parse_value(input, args, key);
        }
        if first {
            args.name = Some(lit);
            return Ok(());
        }
        let msg = if args.name.is_some() {
            "a second metric name; a meter has one name. For a tag, write `key = \"value\"`"
        } else {
            "the metric name must be the first argument; move it to the front"
        };
        return Err(syn::Error::new(lit.span(), msg));
    }
    if input.peek(Ident::peek_any) {
        let ident = input.call(Ident::parse_any)?;
        if input.peek(Token![=]) {
            let key = Key {
                text: ident.unraw().to_string(),
                span: ident.span(),
            };
            return parse_value(input, args, key);
        }
        args.flags.push(ident);
        return Ok(());
    }
    if input.peek(Lit) {
        let lit: Lit = input.parse()?;
        return Err(syn::Error::new(
            lit.span(),
            "expected a string literal: the metric name is written as \"server.requestLatency\"",
        ));
    }
    Err(input.error(
        "expected a metric name (\"server.requestLatency\"), a tag (`key = \"value\"`) or a flag",
    ))
}

/// Parses `= "value"` after a key.
fn parse_value(input: ParseStream, args: &mut MeterArgs, key: Key) -> syn::Result<()> {
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        let value: LitStr = input.parse()?;
        args.tags.push(Tag { key, value });
        return Ok(());
    }
    if input.peek(Lit) {
        let lit: Lit = input.parse()?;
        let text = match &lit {
            Lit::Int(i) => i.base10_digits().to_string(),
            Lit::Float(f) => f.base10_digits().to_string(),
            Lit::Bool(b) => b.value.to_string(),
            Lit::Char(c) => c.value().to_string(),
            _ => "...".to_string(),
        };
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "tag values are string literals: write `{} = \"{}\"`",
                key.text,
                text.escape_default()
            ),
        ));
    }
    Err(input.error(format!(
        "expected a string literal after `{} =`; tag values are string literals such as \"200\"",
        key.text
    )))
}

/// Arguments of `#[timed(...)]` / `#[counted(...)]`.
pub struct AttrArgs(pub MeterArgs);

impl Parse for AttrArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        parse_list(input, End::Input).map(AttrArgs)
    }
}

/// Input of `time!("name", k = "v", { block })`.
pub struct TimeInput {
    /// The meter arguments.
    pub args: MeterArgs,
    /// The block's inner attributes (`#![allow(..)]`), which stay first in it.
    pub inner_attrs: Vec<Attribute>,
    /// The timed block, without its inner attributes.
    pub block: Block,
}

impl Parse for TimeInput {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let args = parse_list(input, End::Block)?;
        if input.is_empty() {
            return Err(input.error(
                "time! needs a block to time as its last argument: \
                 `time!(\"name\", key = \"value\", { ... })`",
            ));
        }
        let content;
        let brace_token = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.call(Block::parse_within)?;
        let block = Block { brace_token, stmts };
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
        }
        if !input.is_empty() {
            return Err(input.error("the block must be the last argument of time!"));
        }
        Ok(TimeInput {
            args,
            inner_attrs,
            block,
        })
    }
}

/// One `static NAME: Type = "name", k = "v";` of `metrics!`.
pub struct Declaration {
    /// Attributes, doc comments included, passed through.
    pub attrs: Vec<Attribute>,
    /// Visibility, passed through.
    pub vis: Visibility,
    /// The `static` keyword (for spans).
    pub static_token: Token![static],
    /// The static's name.
    pub ident: Ident,
    /// The meter type as written (`Counter`, `spectator::Timer`, ...).
    pub ty: Path,
    /// The meter arguments after `=`.
    pub args: MeterArgs,
    /// The `=` token (for spans of "missing name" errors).
    pub eq_span: Span,
}

/// The whole input of `metrics!`.
pub struct Declarations(pub Vec<Declaration>);

impl Parse for Declarations {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = Vec::new();
        while !input.is_empty() {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis: Visibility = input.parse()?;
            if !input.peek(Token![static]) {
                return Err(
                    input.error("expected `static NAME: Type = \"metric.name\", key = \"value\";`")
                );
            }
            let static_token: Token![static] = input.parse()?;
            if input.peek(Token![mut]) {
                let m: Token![mut] = input.parse()?;
                return Err(syn::Error::new(
                    m.span(),
                    "meter statics cannot be `mut`: meters are updated through shared handles; \
                     remove `mut`",
                ));
            }
            let ident: Ident = input.parse()?;
            input.parse::<Token![:]>()?;
            let ty: Path = input.parse()?;
            let eq: Token![=] = input.parse()?;
            let args = parse_list(input, End::Semi)?;
            if input.is_empty() {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("missing `;` at the end of the declaration of `{ident}`"),
                ));
            }
            input.parse::<Token![;]>()?;
            out.push(Declaration {
                attrs,
                vis,
                static_token,
                ident,
                ty,
                args,
                eq_span: eq.span,
            });
        }
        Ok(Declarations(out))
    }
}

/// Parses attribute arguments (an empty stream gives empty arguments).
pub fn parse_attr(tokens: TokenStream) -> syn::Result<MeterArgs> {
    syn::parse2::<AttrArgs>(tokens).map(|a| a.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn parses_name_tags_and_flags() {
        let args = parse_attr(quote!(
            "a.b",
            k = "v",
            "http.method" = "GET",
            r#type = "x",
            percentiles
        ))
        .unwrap();
        assert_eq!(args.name.as_ref().unwrap().value(), "a.b");
        let keys: Vec<_> = args.tags.iter().map(|t| t.key.text.clone()).collect();
        assert_eq!(keys, ["k", "http.method", "type"]);
        assert_eq!(args.flags.len(), 1);
        assert_eq!(args.flags[0], "percentiles");
    }

    #[test]
    fn empty_and_trailing_comma() {
        assert!(parse_attr(quote!()).unwrap().name.is_none());
        let args = parse_attr(quote!(k = "v",)).unwrap();
        assert!(args.name.is_none());
        assert_eq!(args.tags.len(), 1);
    }

    #[test]
    fn rejects_non_string_values_and_late_names() {
        let err = parse_attr(quote!("a.b", code = 200)).err().unwrap();
        assert!(err.to_string().contains("code = \"200\""), "{err}");
        let err = parse_attr(quote!(k = "v", "a.b")).err().unwrap();
        assert!(err.to_string().contains("first argument"), "{err}");
        assert!(parse_attr(quote!("a.b" k = "v")).is_err());
        assert!(parse_attr(quote!(42)).is_err());
    }

    #[test]
    fn time_input_needs_a_block() {
        let t: TimeInput = syn::parse2(quote!("a.b", k = "v", { 1 + 1 })).unwrap();
        assert_eq!(t.args.tags.len(), 1);
        assert!(syn::parse2::<TimeInput>(quote!("a.b")).is_err());
        assert!(syn::parse2::<TimeInput>(quote!("a.b", { 1 }, k = "v")).is_err());
        let t: TimeInput = syn::parse2(quote!(
            "a.b",
            {
                #![allow(unused)]
                1
            }
        ))
        .unwrap();
        assert_eq!(t.inner_attrs.len(), 1);
        assert_eq!(t.block.stmts.len(), 1);
    }

    #[test]
    fn declarations() {
        let d: Declarations = syn::parse2(quote! {
            /// Doc.
            pub static A: Counter = "a.b", k = "v";
            static B: spectator::Timer = "c.d";
        })
        .unwrap();
        assert_eq!(d.0.len(), 2);
        assert_eq!(d.0[0].attrs.len(), 1);
        assert_eq!(d.0[1].ty.segments.last().unwrap().ident, "Timer");
        assert!(syn::parse2::<Declarations>(quote!(
            static mut A: Counter = "a.b";
        ))
        .is_err());
    }
}
