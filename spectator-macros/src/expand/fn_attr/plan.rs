//! The plan of an expansion: the meter kind, the checked name and tags, and the shape of the
//! body, decided from the arguments and the signature before any code is written.

use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Expr, ExprAsync, ReturnType, Stmt, Type};

use super::Kind;
use crate::args::MeterArgs;
use crate::errors::Errors;
use crate::func::{Body, Func};
use crate::kinds;
use crate::validate::{self, Flag, Meter, NameRule, Rules};

/// How the body is wrapped.
pub(super) enum Shape<'a> {
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

    /// The shape for a meter without the `result` tag (a long task timer): the statements
    /// follow the guard in the body itself, sync or async (an async fn's body runs from its
    /// first poll, and its locals, the guard among them, drop with the future); a future built
    /// by the tail is still wrapped, to start the task when that future is first polled.
    fn untagged(self) -> Shape<'a> {
        match self {
            Shape::TaggedSync | Shape::TaggedAsync => Shape::Plain,
            other => other,
        }
    }
}

/// What an attribute expands to, before any code is written.
pub(super) struct Plan<'a> {
    /// The runtime meter type of the call site: `Timer`, `PercentileTimer`, `LongTaskTimer`
    /// or `Counter`.
    pub(super) kind: &'static str,
    /// Whether the meter is a long task timer: a task runs while the call does, and there is
    /// no `result` tag (a task in flight has no outcome yet, as in Spectator Java).
    pub(super) long_task: bool,

    /// The checked name and the tags written.
    pub(super) meter: Meter,
    /// Tags the attribute adds: `module` and `method` in the argument-less form.
    pub(super) extra: Vec<(&'static str, TokenStream)>,
    /// How the body is wrapped.
    pub(super) shape: Shape<'a>,
}

/// The flags of `#[timed]` that `#[counted]` refuses, with what to write instead.
const COUNTED_REFUSES: &[(Flag, &str)] = &[
    (
        Flag::Percentiles,
        "a counter has no distribution; for percentiles of the calls' durations, use \
         `#[timed(\"name\", percentiles)]`",
    ),
    (
        Flag::LongTask,
        "it counts calls when they end; to see the calls in flight and how long they have run \
         so far, use `#[timed(\"name\", long_task)]`",
    ),
];

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
    pub(super) fn new(kind: Kind, args: &MeterArgs, func: &'a Func) -> syn::Result<Plan<'a>> {
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

        // Decided before the checks, which depend on it (the default name, the `result` tag).
        let long_task = matches!(kind, Kind::Timed) && Flag::LongTask.given(args);
        let shape = if long_task {
            Shape::of(func).untagged()
        } else {
            Shape::of(func)
        };
        let outcome = !long_task && !matches!(shape, Shape::Plain);
        let mut taken = Vec::new();
        if args.name.is_none() {
            taken.extend([TAKEN_MODULE, TAKEN_METHOD]);
        }
        if outcome {
            taken.push(TAKEN_RESULT);
        }
        let (flags, refused): (&[Flag], &[(Flag, &str)]) = match kind {
            Kind::Timed => (&Flag::ALL, &[]),
            Kind::Counted => (&[], COUNTED_REFUSES),
        };
        let rules = Rules {
            macro_name: attr,
            flags,
            refused,
            name: NameRule::Default(kind.default_name(long_task)),
            taken: &taken,
        };
        let checked = validate::check(args, &rules);
        if let Err(e) = &checked {
            errors.add(e.clone());
        }
        errors.finish(())?;
        let meter = checked?;

        let kind = match kind {
            Kind::Timed => kinds::timer(&meter),
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
            long_task,
            meter,
            extra,
            shape,
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
}
