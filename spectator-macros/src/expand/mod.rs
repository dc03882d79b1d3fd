//! Code generation. Expansions stay thin: they declare one `static` call site and call the
//! out-of-line helpers in `spectator::__private`.

pub mod block;
pub mod declare;
pub mod fn_attr;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::LitStr;

use crate::args::MeterArgs;

/// The path of the runtime crate as seen from user code.
pub fn krate() -> TokenStream {
    quote!(::spectator)
}

/// The meter types a call site can hold, by the name users write.
pub const METER_TYPES: &[&str] = &[
    "Counter",
    "Timer",
    "DistributionSummary",
    "Gauge",
    "MaxGauge",
    "PercentileTimer",
    "PercentileDistributionSummary",
];

/// The type and initialiser `holder::new(name, &[(k, v), ...])` of a call-site static
/// (`holder` is `Site` or `StaticMeter`) for a meter of type `meter` (e.g. `Timer`), with the
/// user's tags followed by `extra` (already tokenised values such as `module_path!()`).
pub fn site_init(
    holder: &str,
    meter: &str,
    name: &LitStr,
    args: &MeterArgs,
    extra: &[(&str, TokenStream)],
    span: Span,
) -> (TokenStream, TokenStream) {
    let krate = krate();
    let meter = syn::Ident::new(meter, span);
    let holder = syn::Ident::new(holder, Span::call_site());
    let ty = quote_spanned!(span=> #krate::__private::#holder<#krate::#meter>);
    let mut pairs: Vec<TokenStream> = args
        .tags
        .iter()
        .map(|t| {
            let key = LitStr::new(&t.key.text, t.key.span);
            let value = &t.value;
            quote!((#key, #value))
        })
        .collect();
    for (k, v) in extra {
        pairs.push(quote!((#k, #v)));
    }
    let init = quote_spanned!(name.span()=> #krate::__private::#holder::new(#name, &[#(#pairs),*]));
    (ty, init)
}
