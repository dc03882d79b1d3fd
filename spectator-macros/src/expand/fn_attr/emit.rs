//! The templates: one per [`Shape`], each writing the function's new body around the
//! user's statements.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{Expr, ExprAsync, ReturnType, Stmt, Type};

use super::plan::{Plan, Shape};
use crate::expand::{private, site_init, start_plain, Holder, Idents};
use crate::func::Func;

impl Plan<'_> {
    /// The function with its body measured.
    pub(super) fn emit(&self, func: &Func) -> TokenStream {
        let (ty, init) = site_init(
            Holder::Site,
            self.kind,
            Span::call_site(),
            &self.meter,
            &self.extra,
        );
        let t = Template::new(ty, init, self.long_task);
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
///
/// The call-site `static` is declared in the block that makes the guard,
/// `let guard = { static SITE: Site<Kind> = ..; Guard::plain(&SITE) };`, so that it is in no
/// scope the user's code or another expansion shares: two attributes on one fn each have
/// their own.
struct Template {
    /// `::spectator::__private`.
    p: TokenStream,
    /// The expansion's names.
    ids: Idents,
    /// The guard of a meter without the `result` tag: `Guard::plain(&SITE)`, or
    /// `LongTaskGuard::start(&SITE)` for a long task timer, with the site's static.
    plain_guard: TokenStream,
    /// The guard of a meter with the `result` tag, `Guard::tagged(&SITE)`, with the site's
    /// static.
    tagged_guard: TokenStream,
    /// Whether the meter is a long task timer (which has no `result` tag).
    long_task: bool,
}

impl Template {
    fn new(ty: TokenStream, init: TokenStream, long_task: bool) -> Template {
        let ids = Idents::new();
        let p = private();
        let site = &ids.site;
        let site_static = quote!(static #site: #ty = #init;);
        let start = start_plain(long_task, site);
        Template {
            plain_guard: quote!({ #site_static #start }),
            tagged_guard: quote!({ #site_static #p::Guard::tagged(&#site) }),
            p,
            long_task,
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
            ids, plain_guard, ..
        } = self;
        let guard = &ids.guard;
        let inner_attrs = &func.inner_attrs;
        let (items, rest) = func.items_and_rest();
        func.braced(quote! {
            #(#inner_attrs)*
            #items
            let #guard = #plain_guard;
            #rest
        })
    }

    /// The statements in a closure whose return type is written out, so that `?`, `return`
    /// and the tail expression convert and coerce to it as they would in the function.
    fn tagged_sync(&self, func: &Func) -> TokenStream {
        let Template {
            p,
            ids,
            tagged_guard,
            ..
        } = self;
        let Idents { guard, ret, .. } = ids;
        let inner_attrs = &func.inner_attrs;
        let out = output_type(&func.sig.output);
        let user = func.braced(func.stmts());
        let finish = self.finish();
        func.braced(quote! {
            #(#inner_attrs)*
            let mut #guard = #tagged_guard;
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
            ids, tagged_guard, ..
        } = self;
        let Idents { guard, ret, .. } = ids;
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
            let mut #guard = #tagged_guard;
            let #ret = async move #user.await;
            #finish
            #ret
        })
    }

    /// The statements before the tail, then the tail's async block wrapped in one that holds
    /// the guard (inside `call(..)` when the tail is `Box::pin(async ..)`). The guard is made
    /// when the returned future is first polled.
    fn async_tail(
        &self,
        func: &Func,
        before: &[Stmt],
        call: Option<&Expr>,
        block: &ExprAsync,
    ) -> TokenStream {
        let Template {
            ids, tagged_guard, ..
        } = self;
        let Idents { guard, ret, .. } = ids;
        let inner_attrs = &func.inner_attrs;
        let capture = &block.capture;
        let wrapped = if self.long_task {
            let plain_guard = &self.plain_guard;
            quote! {
                async #capture {
                    let #guard = #plain_guard;
                    #block.await
                }
            }
        } else {
            let finish = self.finish();
            quote! {
                async #capture {
                    let mut #guard = #tagged_guard;
                    let #ret = #block.await;
                    #finish
                    #ret
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use syn::ItemFn;

    fn ret(src: &str) -> ReturnType {
        let f: ItemFn = syn::parse_str(&format!("fn f() {src} {{}}")).unwrap();
        f.sig.output
    }

    #[test]
    fn impl_traits_become_inferred() {
        let t = output_type(&ret("-> Result<impl Iterator<Item = u8>, E>")).to_string();
        assert_eq!(t, "Result < _ , E >");
        assert_eq!(output_type(&ret("")).to_string(), "()");
    }
}
