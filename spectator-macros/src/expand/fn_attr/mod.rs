//! `#[timed]` and `#[counted]` on functions: a [`Plan`](plan::Plan) (meter kind, name, tags, shape) is
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
//! With `long_task` (a long task timer, no `result` tag) sync and async fns alike take the
//! plain shape: the guard holds a running task from the start of the body (the first poll,
//! for an async fn) until it drops on return, unwind, or with the dropped future. A fn of the
//! async-tail shape starts its task when the returned future is first polled.
//!
//! In every shape the body keeps its inner attributes first and its braces' spans, and no
//! statement of the user's is rewritten.

mod emit;
mod plan;

use proc_macro2::TokenStream;

use crate::args::parse_attr;
use crate::func::Func;
use plan::Plan;

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

    /// The metric name of the argument-less form (`long_task`: with that flag). A long task
    /// timer has a name of its own, so that `#[timed]` and `#[timed(long_task)]` can measure
    /// the same fn.
    fn default_name(self, long_task: bool) -> &'static str {
        match self {
            Kind::Timed if long_task => "method.longTask",
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

/// Parse, plan, emit.
fn try_expand(kind: Kind, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let args = parse_attr(attr)?;
    let func = Func::parse(item, kind.attr())?;
    let plan = Plan::new(kind, &args, &func)?;
    Ok(plan.emit(&func))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

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

    /// Each expansion's static is in a block of its own, so two attributes on one fn (or an
    /// attribute and the user's items) never declare the same name in one scope.
    #[test]
    fn the_site_static_is_scoped_to_the_guard() {
        for item in [
            quote!(
                fn f() -> u32 {
                    7
                }
            ),
            quote!(
                fn f() -> Result<u32, E> {
                    Ok(7)
                }
            ),
            quote!(
                async fn f() -> u32 {
                    7
                }
            ),
        ] {
            let out = try_expand(Kind::Timed, quote!("a.b"), item)
                .unwrap()
                .to_string();
            assert!(out.contains("= { static __SPECTATOR_SITE :"), "{out}");
        }
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
    fn long_tasks_hold_a_task_guard_in_every_shape_without_a_result_tag() {
        let expand = |attr: TokenStream, item: TokenStream| {
            try_expand(Kind::Timed, attr, item).unwrap().to_string()
        };
        let task = ":: spectator :: __private :: LongTaskGuard :: start (& __SPECTATOR_SITE) } ;";
        for item in [
            quote!(
                fn f() -> io::Result<u32> {
                    Ok(1)
                }
            ),
            quote!(
                async fn f() -> Result<u32, E> {
                    Ok(1)
                }
            ),
        ] {
            let out = expand(quote!("job.run", long_task), item);
            assert!(out.contains(task), "{out}");
            assert!(
                out.contains("Site < :: spectator :: LongTaskTimer >"),
                "{out}"
            );
            assert!(!out.contains("Guard :: tagged"), "{out}");
            assert!(!out.contains("call ("), "{out}");
            assert!(!out.contains("loop"), "{out}");
            assert!(out.trim_end().ends_with("Ok (1) }"), "{out}");
        }

        let boxed = expand(
            quote!("job.run", long_task),
            quote!(
                fn f(&self) -> Pin<Box<dyn Future<Output = ()>>> {
                    Box::pin(async move { () })
                }
            ),
        );
        let wrapped = boxed.split_once("Box :: pin (async move {").unwrap().1;
        assert!(wrapped.contains(task), "{boxed}");
        assert!(wrapped.contains("async move { () } . await"), "{boxed}");

        // The argument-less form has a name of its own; `result` is the user's to set.
        let out = expand(
            quote!(long_task),
            quote!(
                async fn f() {}
            ),
        );
        assert!(out.contains("\"method.longTask\""), "{out}");
        let out = expand(
            quote!("job.run", result = "ok", long_task),
            quote!(
                fn f() -> Result<(), ()> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("(\"result\" , \"ok\")"), "{out}");
        let e = try_expand(
            Kind::Counted,
            quote!("job.run", long_task),
            quote!(
                fn f() {}
            ),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("#[timed(\"name\", long_task)]"), "{e}");
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
