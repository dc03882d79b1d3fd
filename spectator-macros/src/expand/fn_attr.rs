//! `#[timed]` and `#[counted]` on functions: a [`Plan`] (meter kind, name, tags, shape) is
//! made from the arguments and the signature, then emitted by the template of its shape.
//!
//! The shapes, chosen from the signature:
//!
//! * plain: a sync fn whose return type is not a `Result`. The guard is created first and the
//!   user's statements follow in the same body; the guard records when it is dropped, on
//!   return, early return and unwind alike.
//! * tagged sync: a sync fn returning `...::Result<..>`. The statements move into a closure
//!   (so `return` and `?` stay inside it) whose return type is written out, so that `?`
//!   converts errors as it would in the fn; the value it returns picks
//!   `result=success|failure`, and a panic leaves the guard unfinished, recording `failure`.
//! * tagged async: an `async fn`. The statements move into an async block whose output type
//!   is fixed to the fn's the same way (by a never-taken `return`, as an async block cannot
//!   name its output type); the guard lives in the outer future, so dropping it early records
//!   `cancelled`.
//! * async tail: a sync fn whose body ends in an `async` block or in `Box::pin(async ..)`
//!   (the `#[async_trait]` shape). That block is wrapped in one holding the guard.
//!
//! In every shape the body keeps its inner attributes first and its braces' spans, and no
//! statement of the user's is rewritten.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ExprAsync, ReturnType, Stmt, Type};

use super::{private, site_init, Holder, Idents};
use crate::args::{parse_attr, MeterArgs};
use crate::errors::Errors;
use crate::func::{Body, Func};
use crate::validate::{self, Meter, NameRule, Rules};

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

    /// The metric name of the argument-less form.
    fn default_name(self) -> &'static str {
        match self {
            Kind::Timed => "method.timed",
            Kind::Counted => "method.counted",
        }
    }
}

/// Expands the attribute; on error, emits the errors and the untouched item (so the item's
/// other uses still resolve and no follow-up errors drown the real ones).
pub fn expand(kind: Kind, attr: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(kind, attr, item.clone()) {
        Ok(tokens) => tokens,
        Err(err) => {
            let mut out = err.into_compile_error();
            out.extend(item);
            out
        }
    }
}

fn try_expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_attr(attr)?;
    let func = Func::parse(item, kind.attr())?;
    let plan = Plan::new(kind, &args, &func)?;
    Ok(plan.emit(&func))
}

/// How the body is wrapped.
enum Shape<'a> {
    /// Guard, then the statements.
    Plain,
    /// The statements in a closure; the outcome decides `result`.
    TaggedSync,
    /// An `async fn`: the statements in an async block.
    TaggedAsync,
    /// A sync fn returning the future built by its tail: `async {..}`, or `f(async {..})`
    /// where `f` is `Box::pin` (then `call` is `f`).
    AsyncTail {
        /// The statements before the tail.
        before: &'a [Stmt],
        /// `Box::pin`, when the block is its argument.
        call: Option<&'a Expr>,
        /// The async block.
        block: &'a ExprAsync,
    },
}

impl<'a> Shape<'a> {
    fn of(func: &'a Func) -> Shape<'a> {
        if func.sig.asyncness.is_some() {
            return Shape::TaggedAsync;
        }
        if let Body::Stmts(stmts) = &func.body {
            if let Some(shape) = async_tail(stmts) {
                return shape;
            }
        }
        if returns_result(&func.sig.output) {
            Shape::TaggedSync
        } else {
            Shape::Plain
        }
    }

    /// Whether the meter gets the `result` tag.
    fn tagged(&self) -> bool {
        !matches!(self, Shape::Plain)
    }
}

/// What an attribute expands to, before any code is written.
struct Plan<'a> {
    /// The runtime meter type of the call site: `Timer`, `PercentileTimer` or `Counter`.
    kind: &'static str,
    /// The checked name and the tags written.
    meter: Meter,
    /// Tags the attribute adds: `module` and `method` in the argument-less form.
    extra: Vec<(&'static str, TokenStream)>,
    /// How the body is wrapped.
    shape: Shape<'a>,
}

const TAKEN_MODULE: (&str, &str) = (
    "module",
    "is set by the argument-less form (the module path); give a metric name to set it yourself",
);
const TAKEN_METHOD: (&str, &str) = (
    "method",
    "is set by the argument-less form (the function name); give a metric name to set it yourself",
);
const TAKEN_RESULT: (&str, &str) = (
    "result",
    "is set on async and Result-returning functions (success | failure | cancelled)",
);

impl<'a> Plan<'a> {
    /// Checks the function and the arguments; every error is reported at once.
    fn new(kind: Kind, args: &MeterArgs, func: &'a Func) -> syn::Result<Plan<'a>> {
        let attr = kind.attr();
        let mut errors = Errors::default();
        if let Some(c) = &func.sig.constness {
            errors.push(
                c.span,
                format!("{attr} cannot measure a `const fn`: meters are updated at run time; remove `const` or the attribute"),
            );
        }
        if let Some(abi) = &func.sig.abi {
            errors.push(
                abi.span(),
                format!("{attr} cannot wrap an `extern` fn: the guard and closure it adds are Rust-only; call a measured Rust fn from it instead"),
            );
        }

        let shape = Shape::of(func);
        let mut taken = Vec::new();
        if args.name.is_none() {
            taken.extend([TAKEN_MODULE, TAKEN_METHOD]);
        }
        if shape.tagged() {
            taken.push(TAKEN_RESULT);
        }
        let rules = Rules {
            macro_name: attr,
            percentiles: matches!(kind, Kind::Timed),
            name: NameRule::Default(kind.default_name()),
            taken: &taken,
        };
        let checked = validate::check(args, &rules);
        if let Err(e) = &checked {
            errors.add(e.clone());
        }
        errors.finish(())?;
        let meter = checked?;

        let kind = match kind {
            Kind::Timed if meter.percentiles => "PercentileTimer",
            Kind::Timed => "Timer",
            Kind::Counted => "Counter",
        };
        let extra = if meter.named {
            Vec::new()
        } else {
            let method = func.sig.ident.unraw().to_string();
            vec![
                ("module", quote!(::core::module_path!())),
                ("method", quote!(#method)),
            ]
        };
        Ok(Plan {
            kind,
            meter,
            extra,
            shape,
        })
    }

    /// The function with its body measured.
    fn emit(&self, func: &Func) -> TokenStream {
        let (ty, init) = site_init(
            Holder::Site,
            self.kind,
            Span::call_site(),
            &self.meter,
            &self.extra,
        );
        let t = Template::new(ty, init);
        let body = match &self.shape {
            Shape::Plain => t.plain(func),
            Shape::TaggedSync => t.tagged_sync(func),
            Shape::TaggedAsync => t.tagged_async(func),
            Shape::AsyncTail {
                before,
                call,
                block,
            } => t.async_tail(func, before, *call, block),
        };
        let Func {
            outer_attrs,
            vis,
            sig,
            ..
        } = func;
        quote! {
            #(#outer_attrs)*
            #vis #sig
            #body
        }
    }
}

/// The emit templates, one per [`Shape`], each giving the function's new body. Every body
/// starts with the user's inner attributes and keeps the user's braces.
struct Template {
    /// `::spectator::__private`.
    p: TokenStream,
    /// The expansion's names.
    ids: Idents,
    /// `static SITE: Site<Kind> = Site::new(name, tags);`
    site_static: TokenStream,
}

impl Template {
    fn new(ty: TokenStream, init: TokenStream) -> Template {
        let ids = Idents::new();
        let site = &ids.site;
        Template {
            p: private(),
            site_static: quote!(static #site: #ty = #init;),
            ids,
        }
    }

    /// `guard.finish(outcome of ret);` where the autoref probe picks `ProbeResult` for a
    /// `Result` and `ProbeAny` (always a success) otherwise.
    fn finish(&self) -> TokenStream {
        let Template { p, ids, .. } = self;
        let Idents { guard, ret, .. } = ids;
        quote! {
            #guard.finish({
                #[allow(unused_imports)]
                use #p::{ProbeAny as _, ProbeResult as _};
                (&#p::Probe(&#ret)).__spectator_outcome()
            });
        }
    }

    /// The user's leading items, the site and the guard, then the rest of the statements.
    fn plain(&self, func: &Func) -> TokenStream {
        let Template {
            p,
            ids,
            site_static,
        } = self;
        let Idents { site, guard, .. } = ids;
        let inner_attrs = &func.inner_attrs;
        let (items, rest) = func.items_and_rest();
        func.braced(quote! {
            #(#inner_attrs)*
            #items
            #site_static
            let #guard = #p::Guard::plain(&#site);
            #rest
        })
    }

    /// The statements in a closure whose return type is written out, so that `?`, `return`
    /// and the tail expression convert and coerce to it as they would in the function.
    fn tagged_sync(&self, func: &Func) -> TokenStream {
        let Template {
            p,
            ids,
            site_static,
        } = self;
        let Idents { site, guard, ret } = ids;
        let inner_attrs = &func.inner_attrs;
        let out = output_type(&func.sig.output);
        let user = func.braced(func.stmts());
        let finish = self.finish();
        func.braced(quote! {
            #(#inner_attrs)*
            #site_static
            let mut #guard = #p::Guard::tagged(&#site);
            let #ret = #p::call(move || -> #out #user);
            #finish
            #ret
        })
    }

    /// The statements in an async block, awaited. An async block cannot have its output type
    /// written out: the never-taken `return` of a value of the function's output type, first
    /// in the block (after the user's items), fixes it before the user's statements are
    /// checked, so that `?`, `return` and the tail convert and coerce to it as they would in
    /// the async fn (the "fake return edge" of tracing-attributes).
    fn tagged_async(&self, func: &Func) -> TokenStream {
        let Template {
            p,
            ids,
            site_static,
        } = self;
        let Idents { site, guard, ret } = ids;
        let inner_attrs = &func.inner_attrs;
        let out = output_type(&func.sig.output);
        let (items, rest) = func.items_and_rest();
        let user = func.braced(quote! {
            #items
            #[allow(unreachable_code, clippy::diverging_sub_expression, clippy::empty_loop, clippy::let_unit_value, clippy::needless_return)]
            if false {
                let #ret: #out = loop {};
                return #ret;
            }
            #rest
        });
        let finish = self.finish();
        func.braced(quote! {
            #(#inner_attrs)*
            #site_static
            let mut #guard = #p::Guard::tagged(&#site);
            let #ret = async move #user.await;
            #finish
            #ret
        })
    }

    /// The statements before the tail, then the tail's async block wrapped in one that holds
    /// the guard (inside `call(..)` when the tail is `Box::pin(async ..)`).
    fn async_tail(
        &self,
        func: &Func,
        before: &[Stmt],
        call: Option<&Expr>,
        block: &ExprAsync,
    ) -> TokenStream {
        let Template {
            p,
            ids,
            site_static,
        } = self;
        let Idents { site, guard, ret } = ids;
        let inner_attrs = &func.inner_attrs;
        let capture = &block.capture;
        let finish = self.finish();
        let wrapped = quote! {
            async #capture {
                #site_static
                let mut #guard = #p::Guard::tagged(&#site);
                let #ret = #block.await;
                #finish
                #ret
            }
        };
        let tail = match call {
            Some(call) => quote!(#call(#wrapped)),
            None => wrapped,
        };
        func.braced(quote! {
            #(#inner_attrs)*
            #(#before)*
            #tail
        })
    }
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

/// The async-tail shape, when the body's tail expression is `async {..}` or
/// `Box::pin(async {..})` (what `#[async_trait]` generates).
fn async_tail(stmts: &[Stmt]) -> Option<Shape<'_>> {
    let (Stmt::Expr(tail, None), before) = stmts.split_last()? else {
        return None;
    };
    match tail {
        Expr::Async(block) => Some(Shape::AsyncTail {
            before,
            call: None,
            block,
        }),
        Expr::Call(call) if call.args.len() == 1 && is_box_pin(&call.func) => {
            match call.args.first() {
                Some(Expr::Async(block)) => Some(Shape::AsyncTail {
                    before,
                    call: Some(&call.func),
                    block,
                }),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Whether `func` is a path ending in `Box::pin`.
fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(p) = func else { return false };
    let mut rev = p.path.segments.iter().rev();
    matches!(
        (rev.next(), rev.next()),
        (Some(pin), Some(boxed)) if pin.ident == "pin" && boxed.ident == "Box"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    use syn::ItemFn;

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
        let tail = |src: &str| {
            let f: ItemFn = syn::parse_str(src).unwrap();
            match async_tail(&f.block.stmts) {
                Some(Shape::AsyncTail { before, call, .. }) => Some((before.len(), call.is_some())),
                _ => None,
            }
        };
        assert_eq!(
            tail("fn f() -> X { Box::pin(async move { 1 }) }"),
            Some((0, true))
        );
        assert_eq!(
            tail("fn f() -> X { let a = 1; async { a } }"),
            Some((1, false))
        );
        assert_eq!(tail("fn f() -> X { Box::new(async { 1 }) }"), None);
        assert_eq!(tail("fn f() -> X { async { 1 }; }"), None);
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
            sync.contains("call (move || -> io :: Result < u32 > {"),
            "{sync}"
        );

        let asynchronous = expand(quote!(
            async fn f() -> u32 {
                1
            }
        ));
        assert!(asynchronous.contains("Guard :: tagged"), "{asynchronous}");
        assert!(
            asynchronous.contains(": u32 = loop { } ; return"),
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

    /// The body's statements are spliced, not nested in a block of ours (which made
    /// `fn h() -> u32 { 7 }` warn `unused_braces`), and inner attributes stay first.
    #[test]
    fn statements_are_spliced_after_inner_attributes_and_items() {
        let out = try_expand(
            Kind::Timed,
            TokenStream::new(),
            quote!(
                #[inline]
                fn f() -> u32 {
                    #![allow(unused_variables)]
                    fn helper() {}
                    let x = 3;
                    7
                }
            ),
        )
        .unwrap()
        .to_string();
        let body = out.split_once("-> u32 {").unwrap().1;
        assert!(out.starts_with("# [inline] fn f"), "{out}");
        assert!(
            body.trim_start()
                .starts_with("# ! [allow (unused_variables)] fn helper () { }"),
            "{out}"
        );
        assert!(body.trim_end().ends_with("let x = 3 ; 7 }"), "{out}");
        assert!(!body.contains("{ let x"), "{out}");
        let guard = body.find("Guard :: plain").unwrap();
        assert!(body.find("fn helper").unwrap() < guard, "{out}");
        assert!(guard < body.find("let x").unwrap(), "{out}");
    }

    #[test]
    fn a_body_syn_cannot_parse_is_measured_as_tokens() {
        let out = try_expand(
            Kind::Counted,
            quote!("a.b"),
            quote!(
                fn f() -> u32 {
                    #![allow(unused)]
                    let x = ;
                    7
                }
            ),
        )
        .unwrap()
        .to_string();
        let body = out.split_once("-> u32 {").unwrap().1;
        assert!(
            body.trim_start().starts_with("# ! [allow (unused)]"),
            "{out}"
        );
        assert!(body.contains("Guard :: plain"), "{out}");
        assert!(body.trim_end().ends_with("let x = ; 7 }"), "{out}");
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
    fn rejects_const_extern_and_items_with_every_error() {
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
        let all = try_expand(
            Kind::Timed,
            quote!("a"),
            quote!(
                const fn f() {}
            ),
        )
        .err()
        .unwrap();
        assert_eq!(all.into_iter().count(), 2);
    }
}
