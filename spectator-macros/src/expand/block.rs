//! `time!("name", k = "v", { block })`.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::spanned::Spanned;

use super::{krate, site_init};
use crate::args::TimeInput;
use crate::validate::{self, Rules};

/// Expands `time!`: a call-site static timer and a guard around the untouched block, which
/// stays inline so that `.await`, `?` and `return` inside it behave as they would without the
/// macro (an early exit still records, when the guard drops).
pub fn expand(input: TokenStream) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let TimeInput { args, block } = syn::parse2(input)?;
    validate::check(
        &args,
        &Rules {
            macro_name: "time!",
            flags: &["percentiles"],
            name_required: true,
            taken: &[],
        },
        block.brace_token.span.open(),
    )?;
    let Some(name) = &args.name else {
        return Err(syn::Error::new(
            Span::call_site(),
            "time! needs a metric name",
        ));
    };
    let meter = if args.has_flag("percentiles") {
        "PercentileTimer"
    } else {
        "Timer"
    };
    let (ty, init) = site_init("Site", meter, name, &args, &[], name.span());
    let krate = krate();
    let site = quote::format_ident!("__SPECTATOR_SITE", span = Span::mixed_site());
    let guard = quote::format_ident!("__spectator_guard", span = Span::mixed_site());
    // The statements are spliced in (rather than the block) so that `{ x }` does not trip
    // `unused_braces`; the guard's name is hygienic, so user bindings cannot clash with it.
    let stmts = &block.stmts;
    Ok(quote_spanned! {block.span()=>
        {
            static #site: #ty = #init;
            let #guard = #krate::__private::Guard::plain(&#site);
            #(#stmts)*
        }
    })
}
