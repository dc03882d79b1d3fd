//! `#[timed]` and `#[counted]` on functions.
//!
//! Three shapes of expansion, chosen from the signature:
//!
//! * plain: a sync fn whose return type is not a `Result`. A guard is created first and the
//!   user's block follows untouched; the guard records when it is dropped, on return, early
//!   return and unwind alike.
//! * tagged sync: a sync fn returning `...::Result<..>`. The block moves untouched into a closure
//!   (so `return` and `?` stay inside it); the value it returns picks `result=success|failure`,
//!   a panic leaves the guard unfinished and it records `failure`.
//! * tagged async: an `async fn`, or a fn whose body ends in an `async` block or in
//!   `Box::pin(async ..)` (the `#[async_trait]` shape). The block moves untouched into an async
//!   block; the guard lives in the outer future, so dropping it early records `cancelled`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Block, Expr, ExprAsync, ItemFn, ReturnType, Stmt, Type};

use super::{krate, site_init};
use crate::args::parse_attr;
use crate::validate::{self, Rules};

/// Which attribute is being expanded.
#[derive(Clone, Copy)]
pub enum Kind {
    /// `#[timed]`.
    Timed,
    /// `#[counted]`.
    Counted,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Timed => "#[timed]",
            Kind::Counted => "#[counted]",
        }
    }
}

/// Expands the attribute; on error, emits the error and the untouched item (so the item's other
/// uses still resolve and no follow-up errors drown the real one).
pub fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut out = err.to_compile_error();
            out.extend(item);
            out
        }
    }
}

/// Parses the item as a function with a body, or explains why it is not one.
fn parse_fn(kind: Kind, item: TokenStream) -> syn::Result<ItemFn> {
    let m = kind.attr();
    if let Ok(f) = syn::parse2::<ItemFn>(item.clone()) {
        return Ok(f);
    }
    if let Ok(f) = syn::parse2::<syn::TraitItemFn>(item.clone()) {
        if f.default.is_none() {
            return Err(syn::Error::new(
                f.sig.span(),
                format!(
                    "{m} needs a function body to measure; put it on the implementations \
                     of this trait method, or give the method a default body"
                ),
            ));
        }
    }
    let span = syn::parse2::<syn::Item>(item.clone())
        .map(|i| item_span(&i))
        .unwrap_or_else(|_| Span::call_site());
    Err(syn::Error::new(
        span,
        format!("{m} applies to functions only (free fns, methods, async fns)"),
    ))
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

/// What the expansion has to measure.
enum Shape<'a> {
    /// Guard, then the block inline.
    Plain,
    /// The block in a closure; the outcome decides `result`.
    TaggedSync,
    /// An `async fn`: the block in an async block.
    TaggedAsync,
    /// A sync fn returning a future built by this async block (found at the tail).
    AsyncTail(&'a ExprAsync),
}

fn try_expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_attr(attr)?;
    let func = parse_fn(kind, item)?;
    let m = kind.attr();
    let sig = &func.sig;
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(
            c.span,
            format!("{m} cannot measure a `const fn`: meters are updated at run time; remove `const` or the attribute"),
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            format!("{m} cannot wrap an `extern` fn: the guard and closure it adds are Rust-only; call a measured Rust fn from it instead"),
        ));
    }

    let shape = if sig.asyncness.is_some() {
        Shape::TaggedAsync
    } else if let Some(a) = async_tail(&func.block) {
        Shape::AsyncTail(a)
    } else if returns_result(&sig.output) {
        Shape::TaggedSync
    } else {
        Shape::Plain
    };
    let tagged = !matches!(shape, Shape::Plain);

    let named = args.name.is_some();
    let mut taken: Vec<(&str, &str)> = Vec::new();
    if !named {
        taken.push((
            "module",
            "is set by the argument-less form (the module path); give a metric name to set it yourself",
        ));
        taken.push((
            "method",
            "is set by the argument-less form (the function name); give a metric name to set it yourself",
        ));
    }
    if tagged {
        taken.push((
            "result",
            "is set on async and Result-returning functions (success | failure | cancelled)",
        ));
    }
    let flags: &[&str] = match kind {
        Kind::Timed => &["percentiles"],
        Kind::Counted => &[],
    };
    validate::check(
        &args,
        &Rules {
            macro_name: m,
            flags,
            name_required: false,
            taken: &taken,
        },
        Span::call_site(),
    )?;

    let meter = match kind {
        Kind::Timed if args.has_flag("percentiles") => "PercentileTimer",
        Kind::Timed => "Timer",
        Kind::Counted => "Counter",
    };
    let fn_name = sig.ident.to_string();
    let fn_name = fn_name.strip_prefix("r#").unwrap_or(&fn_name).to_string();
    let (name, extra) = match &args.name {
        Some(n) => (n.clone(), Vec::new()),
        None => {
            let default = match kind {
                Kind::Timed => "method.timed",
                Kind::Counted => "method.counted",
            };
            (
                syn::LitStr::new(default, Span::call_site()),
                vec![
                    ("module", quote!(::core::module_path!())),
                    ("method", quote!(#fn_name)),
                ],
            )
        }
    };
    let (site_ty, site_init) = site_init("Site", meter, &name, &args, &extra, sig.ident.span());

    let krate = krate();
    let p = quote!(#krate::__private);
    let site = quote::format_ident!("__SPECTATOR_SITE", span = Span::mixed_site());
    let guard = quote::format_ident!("__spectator_guard", span = Span::mixed_site());
    let ret = quote::format_ident!("__spectator_ret", span = Span::mixed_site());
    let static_decl = quote! {
        static #site: #site_ty = #site_init;
    };
    let finish = quote! {
        #guard.finish({
            #[allow(unused_imports)]
            use #p::{ProbeAny as _, ProbeResult as _};
            (&#p::Probe(&#ret)).__spectator_outcome()
        });
    };

    let block = &func.block;
    let body = match shape {
        Shape::Plain => quote_spanned! {block.span()=>
            {
                #static_decl
                let #guard = #p::Guard::plain(&#site);
                #block
            }
        },
        Shape::TaggedSync => {
            let out = output_type(&sig.output);
            quote_spanned! {block.span()=>
                {
                    #static_decl
                    let mut #guard = #p::Guard::tagged(&#site);
                    let #ret = #p::call::<#out, _>(move || #block);
                    #finish
                    #ret
                }
            }
        }
        Shape::TaggedAsync => {
            let out = output_type(&sig.output);
            quote_spanned! {block.span()=>
                {
                    #static_decl
                    let mut #guard = #p::Guard::tagged(&#site);
                    // The annotated `let` gives the body its expected type, so that type
                    // errors point into the body and `?` knows what to convert into.
                    #[allow(unreachable_code)]
                    let #ret = #p::future::<#out, _>(async move {
                        let #ret: #out = #block;
                        #ret
                    })
                    .await;
                    #finish
                    #ret
                }
            }
        }
        Shape::AsyncTail(inner) => {
            let capture = &inner.capture;
            let wrapped = quote_spanned! {inner.span()=>
                async #capture {
                    #static_decl
                    let mut #guard = #p::Guard::tagged(&#site);
                    let #ret = #inner.await;
                    #finish
                    #ret
                }
            };
            replace_async_tail(&func.block, wrapped)
        }
    };

    let attrs = &func.attrs;
    let vis = &func.vis;
    Ok(quote! {
        #(#attrs)*
        #vis #sig
        #body
    })
}

/// Whether the declared return type's last path segment is `Result`.
fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let mut ty: &Type = ty;
    loop {
        match ty {
            Type::Paren(p) => ty = &p.elem,
            Type::Group(g) => ty = &g.elem,
            Type::Path(p) => {
                return p.path.segments.last().is_some_and(|s| s.ident == "Result");
            }
            _ => return false,
        }
    }
}

/// The return type as it can be written inside the body: `impl Trait` becomes `_`.
fn output_type(output: &ReturnType) -> TokenStream {
    match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => {
            let mut ty = (**ty).clone();
            infer_impl_traits(&mut ty);
            ty.into_token_stream()
        }
    }
}

/// Replaces every `impl Trait` inside `ty` by `_`.
fn infer_impl_traits(ty: &mut Type) {
    match ty {
        Type::ImplTrait(i) => {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: syn::Token![_](i.impl_token.span),
            });
        }
        Type::Array(a) => infer_impl_traits(&mut a.elem),
        Type::Group(g) => infer_impl_traits(&mut g.elem),
        Type::Paren(p) => infer_impl_traits(&mut p.elem),
        Type::Ptr(p) => infer_impl_traits(&mut p.elem),
        Type::Reference(r) => infer_impl_traits(&mut r.elem),
        Type::Slice(s) => infer_impl_traits(&mut s.elem),
        Type::Tuple(t) => t.elems.iter_mut().for_each(infer_impl_traits),
        Type::Path(p) => {
            if let Some(q) = &mut p.qself {
                infer_impl_traits(&mut q.ty);
            }
            for seg in &mut p.path.segments {
                if let syn::PathArguments::AngleBracketed(a) = &mut seg.arguments {
                    for arg in &mut a.args {
                        if let syn::GenericArgument::Type(t) = arg {
                            infer_impl_traits(t);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// The async block a sync fn returns: its tail expression is `async {..}` or
/// `Box::pin(async {..})` (what `#[async_trait]` generates).
fn async_tail(block: &Block) -> Option<&ExprAsync> {
    let Some(Stmt::Expr(tail, None)) = block.stmts.last() else {
        return None;
    };
    match tail {
        Expr::Async(a) => Some(a),
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => {
            match call.args.first() {
                Some(Expr::Async(a)) => Some(a),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `func` is a path ending in `Box::pin`.
fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(p) = func else { return false };
    let segs: Vec<_> = p.path.segments.iter().collect();
    segs.len() >= 2 && segs[segs.len() - 1].ident == "pin" && segs[segs.len() - 2].ident == "Box"
}

/// The block with its tail async block replaced by `wrapped`; other statements untouched.
fn replace_async_tail(block: &Block, wrapped: TokenStream) -> TokenStream {
    let n = block.stmts.len();
    let before = &block.stmts[..n - 1];
    let tail = match &block.stmts[n - 1] {
        Stmt::Expr(Expr::Call(call), None) => {
            let func = &call.func;
            quote!(#func(#wrapped))
        }
        _ => wrapped,
    };
    let mut out = TokenStream::new();
    block.brace_token.surround(&mut out, |out| {
        for s in before {
            s.to_tokens(out);
        }
        tail.to_tokens(out);
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(src: &str) -> ReturnType {
        let f: ItemFn = syn::parse_str(&format!("fn f() {src} {{}}")).unwrap();
        f.sig.output
    }

    #[test]
    fn result_detection() {
        assert!(returns_result(&ret("-> Result<u8, E>")));
        assert!(returns_result(&ret("-> io::Result<u8>")));
        assert!(returns_result(&ret("-> ::std::result::Result<(), ()>")));
        assert!(!returns_result(&ret("")));
        assert!(!returns_result(&ret("-> Option<Result<u8, E>>")));
        assert!(!returns_result(&ret("-> ResultSet")));
    }

    #[test]
    fn impl_traits_become_inferred() {
        let t = output_type(&ret("-> Result<impl Iterator<Item = u8>, E>")).to_string();
        assert_eq!(t, "Result < _ , E >");
        assert_eq!(output_type(&ret("")).to_string(), "()");
    }

    #[test]
    fn finds_async_tails() {
        let f: ItemFn = syn::parse_str("fn f() -> X { Box::pin(async move { 1 }) }").unwrap();
        assert!(async_tail(&f.block).is_some());
        let f: ItemFn = syn::parse_str("fn f() -> X { let a = 1; async { a } }").unwrap();
        assert!(async_tail(&f.block).is_some());
        let f: ItemFn = syn::parse_str("fn f() -> X { Box::new(async { 1 }) }").unwrap();
        assert!(async_tail(&f.block).is_none());
    }

    #[test]
    fn picks_the_shape_from_the_signature() {
        let expand = |item: TokenStream| {
            try_expand(Kind::Timed, quote!("a.b"), item)
                .unwrap()
                .to_string()
        };
        let plain = expand(quote!(
            fn f() -> u32 {
                1
            }
        ));
        assert!(plain.contains("Guard :: plain"), "{plain}");
        assert!(!plain.contains("call ::"), "{plain}");

        let sync = expand(quote!(
            fn f() -> io::Result<u32> {
                Ok(1)
            }
        ));
        assert!(sync.contains("Guard :: tagged"), "{sync}");
        assert!(
            sync.contains("call :: < io :: Result < u32 > , _ >"),
            "{sync}"
        );

        let asynchronous = expand(quote!(
            async fn f() -> u32 {
                1
            }
        ));
        assert!(asynchronous.contains("Guard :: tagged"), "{asynchronous}");
        assert!(
            asynchronous.contains("future :: < u32 , _ >"),
            "{asynchronous}"
        );

        let boxed = expand(quote!(
            fn f(&self) -> Pin<Box<dyn Future<Output = ()>>> {
                Box::pin(async move { () })
            }
        ));
        assert!(boxed.starts_with("fn f"), "{boxed}");
        assert!(boxed.contains("Box :: pin (async move {"), "{boxed}");
        assert!(boxed.contains("Guard :: tagged"), "{boxed}");
    }

    #[test]
    fn default_form_adds_module_and_method_tags() {
        let out = try_expand(
            Kind::Counted,
            TokenStream::new(),
            quote!(
                fn r#go() {}
            ),
        )
        .unwrap()
        .to_string();
        assert!(out.contains("\"method.counted\""), "{out}");
        assert!(
            out.contains("(\"module\" , :: core :: module_path ! ())"),
            "{out}"
        );
        assert!(out.contains("(\"method\" , \"go\")"), "{out}");
        assert!(out.contains("Site < :: spectator :: Counter >"), "{out}");
    }

    #[test]
    fn rejects_const_extern_and_items() {
        let e = |item: TokenStream| {
            try_expand(Kind::Timed, TokenStream::new(), item)
                .err()
                .unwrap()
                .to_string()
        };
        assert!(e(quote!(
            const fn f() {}
        ))
        .contains("const fn"));
        assert!(e(quote!(
            extern "C" fn f() {}
        ))
        .contains("extern"));
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
