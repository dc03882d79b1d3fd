//! Code generation. Expansions stay thin: they declare one `static` call site and call the
//! out-of-line helpers in `spectator::__private`.
//!
//! Spans: the code an expansion adds is spanned at the macro call (`Span::call_site()`, or
//! `Span::mixed_site()` for its locals, which user code cannot name), never at the user's
//! tokens, so that lints treat it as macro output and report nothing in user code that the
//! same code without the macro would not get. The user's own tokens keep their spans, so
//! errors in them point where they were written.

pub mod block;
pub mod declare;
pub mod fn_attr;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, LitStr};

use crate::validate::Meter;

/// The path of the runtime crate as seen from user code.
pub fn krate() -> TokenStream {
    quote!(::spectator)
}

/// The runtime's support module, `::spectator::__private`.
pub fn private() -> TokenStream {
    let krate = krate();
    quote!(#krate::__private)
}

/// The names of the expansion's own items and locals. The locals are hygienic
/// (`Span::mixed_site()`), so user bindings can neither see nor shadow them.
pub struct Idents {
    /// The call-site `static`.
    pub site: Ident,
    /// The guard that records when dropped.
    pub guard: Ident,
    /// The body's value.
    pub ret: Ident,
}

impl Idents {
    pub fn new() -> Idents {
        Idents {
            site: format_ident!("__SPECTATOR_SITE", span = Span::mixed_site()),
            guard: format_ident!("__spectator_guard", span = Span::mixed_site()),
            ret: format_ident!("__spectator_ret", span = Span::mixed_site()),
        }
    }
}

/// The expression that starts measuring one run of a call site's code, recorded without a
/// `result` tag: a `Guard` that records the run into the site's counter or timer when it is
/// dropped, or, for a long task timer, a `LongTaskGuard` holding a task that runs until it is
/// dropped.
pub fn start_plain(long_task: bool, site: &Ident) -> TokenStream {
    let p = private();
    if long_task {
        quote!(#p::LongTaskGuard::start(&#site))
    } else {
        quote!(#p::Guard::plain(&#site))
    }
}

/// What holds a call site's meter.
#[derive(Clone, Copy)]
pub enum Holder {
    /// `__private::Site`: the attributes' and `time!`'s call sites.
    Site,
    /// `__private::StaticMeter`: a `metrics!` static, which dereferences to its meter.
    StaticMeter,
}

/// The type and initialiser of a call-site static: `Holder<::spectator::Kind>` and
/// `Holder::new(name, &[(k, v), ...])`, with the checked meter's tags followed by `extra`
/// (tags the macro adds, already tokenised, such as `module_path!()`). `kind_span` is where a
/// failure to find the kind is reported (the type a `metrics!` user wrote).
pub fn site_init(
    holder: Holder,
    kind: &str,
    kind_span: Span,
    meter: &Meter,
    extra: &[(&str, TokenStream)],
) -> (TokenStream, TokenStream) {
    let krate = krate();
    let p = private();
    let kind = Ident::new(kind, kind_span);
    let holder = match holder {
        Holder::Site => quote!(Site),
        Holder::StaticMeter => quote!(StaticMeter),
    };
    let ty = quote!(#p::#holder<#krate::#kind>);
    let user = meter.tags.iter().map(|t| {
        let key = LitStr::new(&t.key.text, t.key.span);
        let value = &t.value;
        quote!((#key, #value))
    });
    let extra = extra.iter().map(|(k, v)| quote!((#k, #v)));
    let name = &meter.name;
    let init = quote!(#p::#holder::new(#name, &[#(#user,)* #(#extra,)*]));
    (ty, init)
}
