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
use crate::validate::{self, Meter, NameRule, Rules};

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

    /// Whether the meter gets the `result` tag.
    fn tagged(&self) -> bool {
        !matches!(self, Shape::Plain)
    }
}

/// What an attribute expands to, before any code is written.
pub(super) struct Plan<'a> {
    /// The runtime meter type of the call site: `Timer`, `PercentileTimer` or `Counter`.
    pub(super) kind: &'static str,
    /// The checked name and the tags written.
    pub(super) meter: Meter,
    /// Tags the attribute adds: `module` and `method` in the argument-less form.
    pub(super) extra: Vec<(&'static str, TokenStream)>,
    /// How the body is wrapped.
    pub(super) shape: Shape<'a>,
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
