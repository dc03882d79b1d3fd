//! `metrics! { static NAME: Type = "name", k = "v"; ... }`.

use proc_macro2::TokenStream;
use quote::quote_spanned;
use syn::spanned::Spanned;

use super::{site_init, METER_TYPES};
use crate::args::Declarations;
use crate::validate::{self, Rules};

/// Expands `metrics!`: one `static` call site per declaration, each dereferencing to its meter.
pub fn expand(input: TokenStream) -> TokenStream {
    match try_expand(input) {
        Ok(tokens) => tokens,
        Err(err) => err.to_compile_error(),
    }
}

fn try_expand(input: TokenStream) -> syn::Result<TokenStream> {
    let Declarations(decls) = syn::parse2(input)?;
    let mut out = TokenStream::new();
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    for d in &decls {
        let last = d.ty.segments.last();
        let meter = last.map(|s| s.ident.to_string()).unwrap_or_default();
        let args_ok = last.is_some_and(|s| s.arguments.is_empty());
        if !args_ok || !METER_TYPES.contains(&meter.as_str()) {
            let list: Vec<String> = METER_TYPES.iter().map(|t| format!("`{t}`")).collect();
            push(syn::Error::new(
                d.ty.span(),
                format!(
                    "unknown meter type: metrics! declares one of {}",
                    list.join(", ")
                ),
            ));
            continue;
        }
        let rules = Rules {
            macro_name: "metrics!",
            flags: &[],
            name_required: true,
            taken: &[],
        };
        if let Err(e) = validate::check(&d.args, &rules, d.eq_span) {
            push(e);
            continue;
        }
        let Some(name) = &d.args.name else { continue };
        let span = d.ty.span();
        let (ty, init) = site_init("StaticMeter", &meter, name, &d.args, &[], span);
        let attrs = &d.attrs;
        let vis = &d.vis;
        let ident = &d.ident;
        let static_token = &d.static_token;
        out.extend(quote_spanned! {d.ident.span()=>
            #(#attrs)*
            #vis #static_token #ident: #ty = #init;
        });
    }
    match errors {
        Some(e) => Err(e),
        None => Ok(out),
    }
}
