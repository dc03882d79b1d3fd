//! `time!("name", k = "v", { block })`.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::{site_init, start_plain, Holder, Idents};
use crate::args::TimeInput;
use crate::func::split_items;
use crate::kinds;
use crate::validate::{self, Flag, NameRule, Rules};

/// Expands `time!`: a call-site static timer and a guard, followed by the block's statements,
/// which stay inline so that `.await`, `?` and `return` inside them behave as they would
/// without the macro (an early exit still records, when the guard drops). With `long_task`
/// the guard holds a task of a long task timer, running until the block is left (or the
/// future running it is dropped).
pub fn expand(input: TokenStream) -> TokenStream {
    try_expand(input).unwrap_or_else(syn::Error::into_compile_error)
}

fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let TimeInput {
        args,
        inner_attrs,
        block,
    } = syn::parse2(input)?;
    let meter = validate::check(
        &args,
        &Rules {
            macro_name: "time!",
            flags: &Flag::ALL,
            refused: &[],
            name: NameRule::Required(block.brace_token.span.open()),
            taken: &[],
        },
    )?;
    let kind = kinds::timer(&meter);
    let (ty, init) = site_init(Holder::Site, kind, Span::call_site(), &meter, &[]);
    let Idents { site, guard, .. } = Idents::new();
    let start = start_plain(meter.long_task, &site);
    // The statements are spliced into a block with the user's braces (rather than the user's
    // block nested in one of ours), so that `{ x }` does not trip `unused_braces`; the user's
    // leading items stay ahead of the guard's `let`.
    let (items, rest) = split_items(&block.stmts);
    let mut out = TokenStream::new();
    block.brace_token.surround(&mut out, |out| {
        out.extend(quote! {
            #(#inner_attrs)*
            #(#items)*
            static #site: #ty = #init;
            let #guard = #start;
            #(#rest)*
        });
    });
    Ok(out)
}
