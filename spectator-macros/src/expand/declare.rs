//! `metrics! { static NAME: Type = "name", k = "v"; ... }`.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

use super::{site_init, Holder};
use crate::args::{Declaration, Declarations};
use crate::errors::Errors;
use crate::kinds;
use crate::validate::{self, Flag, NameRule, Rules};

/// Expands `metrics!`: one `static` call site per declaration, each dereferencing to its meter.
/// Declarations with errors are reported (all of them) and left out; the others are emitted.
pub fn expand(input: TokenStream) -> TokenStream {
    let Declarations(decls) = match syn::parse2(input) {
        Ok(d) => d,
        Err(e) => return e.into_compile_error(),
    };
    let mut errors = Errors::default();
    let mut out = TokenStream::new();
    for d in &decls {
        match declare(d) {
            Ok(tokens) => out.extend(tokens),
            Err(e) => errors.add(e),
        }
    }
    if let Err(e) = errors.finish(()) {
        out.extend(e.into_compile_error());
    }
    out
}

/// One checked declaration's static.
fn declare(d: &Declaration) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let last = d.ty.segments.last();
    let kind = last
        .filter(|s| s.arguments.is_empty())
        .and_then(|s| kinds::lookup(&s.ident.to_string()));
    if kind.is_none() {
        errors.push(
            d.ty.span(),
            format!(
                "unknown meter type: metrics! declares one of {}",
                kinds::listed()
            ),
        );
    }
    let rules = Rules {
        macro_name: "metrics!",
        flags: &[],
        refused: &[
            (
                Flag::Percentiles,
                "the meter type says what is recorded; declare a `PercentileTimer` or a \
                 `PercentileDistributionSummary`",
            ),
            (
                Flag::LongTask,
                "the meter type says what is recorded; declare a `LongTaskTimer`",
            ),
        ],
        name: NameRule::Required(d.eq_span),
        taken: &[],
    };
    let meter = match validate::check(&d.args, &rules) {
        Ok(m) => Some(m),
        Err(e) => {
            errors.add(e);
            None
        }
    };
    let (Some(kind), Some(meter)) = (kind, meter) else {
        return errors.finish(TokenStream::new());
    };
    let (ty, init) = site_init(Holder::StaticMeter, kind, d.ty.span(), &meter, &[]);
    let Declaration {
        attrs,
        vis,
        static_token,
        ident,
        ..
    } = d;
    Ok(quote! {
        #(#attrs)*
        #vis #static_token #ident: #ty = #init;
    })
}
