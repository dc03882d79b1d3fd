//! The macros add no lint to user code: every function below is free of rustc warnings and of
//! clippy's `all` and `pedantic` lints without its attribute, and must stay so with it.
//!
//! `cargo test` builds this file with `#![deny(warnings)]`; `cargo clippy --all-targets`
//! builds it with the clippy groups below denied. A lint that fires here was added by an
//! expansion. The shapes: one-line and empty bodies, inner attributes, attributes beside the
//! macro, items in the body, methods taking `self`, `&self`, `&mut self`, async fns, generic
//! fns, `impl Trait` returns, `?` (on `Result` and `Option`), early returns, diverging bodies,
//! the `#[async_trait]` shape, `time!` and `metrics!`, and each again with `long_task` (a long
//! task timer: a task guard instead of a recording one, and no `result` tag). The expansions' own code (a guard's
//! `let`, a value bound then returned, a never-taken `return`, locals named `__spectator_*`)
//! is where `unused_braces`, `unreachable_code`, `clippy::let_and_return`,
//! `clippy::needless_return` or `clippy::used_underscore_binding` would show.
//!
//! To see that the plain functions are clean, delete the `#[timed..]`/`#[counted..]` lines and
//! run `cargo clippy --tests -- -W clippy::pedantic` on the result; it reports nothing.

#![deny(warnings)]
#![deny(clippy::all, clippy::pedantic)]

use std::fmt::Display;
use std::future::Future;
use std::num::ParseIntError;
use std::pin::Pin;

use spectator::{counted, global, metrics, time, timed};

// ---------------------------------------------------------------- one-line and empty bodies

#[rustfmt::skip] // one-line bodies are the case under test
#[timed]
fn seven() -> u32 { 7 }

#[rustfmt::skip] // one-line bodies are the case under test
#[counted("lints.plus_one")]
fn plus_one(a: u32) -> u32 { a + 1 }

#[rustfmt::skip] // one-line bodies are the case under test
#[timed("lints.empty")]
fn empty() {}

#[rustfmt::skip] // one-line bodies are the case under test
#[counted]
fn empty_default() {}

#[rustfmt::skip] // one-line bodies are the case under test
#[timed("lints.result_one_line")]
fn parse_one_line(s: &str) -> Result<u32, ParseIntError> { s.parse() }

// ---------------------------------------------------------------- attributes and items

#[timed]
fn inner_attributes() -> u32 {
    #![allow(unused_variables)]
    let x = 3;
    5
}

#[timed("lints.inner_result")]
fn inner_attributes_result(s: &str) -> Result<u32, ParseIntError> {
    #![allow(clippy::needless_question_mark)]
    Ok(s.parse()?)
}

#[rustfmt::skip] // one-line bodies are the case under test
#[must_use]
#[timed("lints.must_use")]
fn must_use_before() -> u32 { 1 }

#[rustfmt::skip] // one-line bodies are the case under test
#[counted("lints.inline")]
#[inline]
#[must_use]
fn inline_after(a: u32) -> u32 { a * 2 }

#[timed("lints.items")]
fn items_first(a: u32) -> u32 {
    const STEP: u32 = 2;
    fn helper(a: u32) -> u32 {
        a + STEP
    }
    let b = helper(a);
    b * 2
}

// ---------------------------------------------------------------- ?, early return, divergence

#[derive(Debug)]
struct AppError(String);

impl From<ParseIntError> for AppError {
    fn from(e: ParseIntError) -> Self {
        AppError(e.to_string())
    }
}

#[counted("lints.question_mark")]
fn question_mark(s: &str) -> Result<u32, AppError> {
    let n: u32 = s.parse()?;
    Ok(n + 1)
}

#[timed("lints.early_return")]
fn early_return(n: u32) -> u32 {
    if n == 0 {
        return 1;
    }
    n * 2
}

#[timed("lints.early_return_result")]
fn early_return_result(n: u32) -> Result<u32, AppError> {
    if n == 0 {
        return Err(AppError("zero".to_string()));
    }
    Ok(n)
}

#[counted("lints.diverges")]
fn diverges(n: u32) -> u32 {
    if n > 0 {
        return n;
    }
    panic!("zero")
}

#[timed("lints.diverges_result")]
fn diverges_result(s: &str) -> Result<u32, AppError> {
    let n: u32 = s.parse()?;
    if n > 0 {
        return Ok(n);
    }
    unreachable!("callers pass a positive number")
}

#[counted("lints.option_question_mark")]
fn first_char(s: &str) -> Option<char> {
    let c = s.chars().next()?;
    Some(c.to_ascii_uppercase())
}

#[counted("lints.underscore")]
fn underscore_parameter(_ignored: u32, s: &str) -> Result<u32, AppError> {
    Ok(s.parse::<u32>()? + 1)
}

// ---------------------------------------------------------------- generics and impl Trait

#[counted("lints.generic")]
fn generic<T: Display>(value: &T) -> String {
    format!("<{value}>")
}

#[timed("lints.const_generic")]
fn first_of<const N: usize>(values: [u32; N]) -> Option<u32> {
    values.first().copied()
}

#[timed("lints.impl_iterator")]
fn evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[counted("lints.impl_in_result")]
fn displayable(s: &str) -> Result<impl Display, AppError> {
    let n: u32 = s.parse()?;
    Ok(n)
}

// ---------------------------------------------------------------- methods

struct Service {
    hits: u32,
    name: String,
}

impl Service {
    #[timed("lints.method.new")]
    fn new(name: &str) -> Self {
        Service {
            hits: 0,
            name: name.to_string(),
        }
    }

    #[rustfmt::skip] // one-line bodies are the case under test
    #[counted("lints.method.by_ref")]
    fn name(&self) -> &str { &self.name }

    #[counted("lints.method.by_mut")]
    fn hit(&mut self) -> u32 {
        self.hits += 1;
        self.hits
    }

    #[timed("lints.method.result")]
    fn checked(&mut self, ok: bool) -> Result<&mut u32, AppError> {
        if !ok {
            return Err(AppError("refused".to_string()));
        }
        Ok(&mut self.hits)
    }

    #[rustfmt::skip] // one-line bodies are the case under test
    #[counted("lints.method.by_value")]
    fn into_name(self) -> String { self.name }

    #[timed("lints.method.async")]
    async fn add(&mut self, n: &str) -> Result<u32, AppError> {
        tokio::task::yield_now().await;
        self.hits += n.parse::<u32>()?;
        Ok(self.hits)
    }

    #[counted("lints.method.async_ref")]
    async fn name_later(&self) -> &str {
        tokio::task::yield_now().await;
        &self.name
    }

    /// The shape `#[async_trait]` generates.
    #[timed("lints.method.boxed")]
    fn boxed(&self, ok: bool) -> Pin<Box<dyn Future<Output = Result<u32, AppError>> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            if ok {
                Ok(self.hits)
            } else {
                Err(AppError("boxed".to_string()))
            }
        })
    }
}

trait Greeter {
    fn greeting(&self) -> String;

    #[counted("lints.trait.default")]
    fn greet_twice(&self) -> String {
        let once = self.greeting();
        format!("{once} {once}")
    }
}

impl Greeter for Service {
    #[rustfmt::skip] // one-line bodies are the case under test
    #[timed("lints.trait.impl")]
    fn greeting(&self) -> String { format!("hello from {}", self.name) }
}

// ---------------------------------------------------------------- async fns

#[timed("lints.async")]
async fn fetch(n: u32) -> u32 {
    tokio::task::yield_now().await;
    n + 1
}

#[counted]
async fn fetch_parsed(s: &str) -> Result<u32, AppError> {
    tokio::task::yield_now().await;
    let n: u32 = s.parse()?;
    Ok(n)
}

#[timed("lints.async_generic")]
async fn fetch_generic<T: Into<String> + Send>(value: T) -> String {
    tokio::task::yield_now().await;
    value.into()
}

#[timed("lints.async_diverges")]
async fn diverges_async(n: u32) -> u32 {
    tokio::task::yield_now().await;
    if n > 0 {
        return n;
    }
    panic!("zero")
}

// ---------------------------------------------------------------- long tasks

#[rustfmt::skip] // one-line bodies are the case under test
#[timed("lints.long.one_line", long_task)]
fn long_seven() -> u32 { 7 }

#[rustfmt::skip] // one-line bodies are the case under test
#[timed(long_task)]
fn long_empty_default() {}

#[rustfmt::skip] // one-line bodies are the case under test
#[timed("lints.long.result_one_line", long_task)]
fn long_parse_one_line(s: &str) -> Result<u32, ParseIntError> { s.parse() }

#[timed("lints.long.inner", long_task)]
fn long_inner_attributes() -> u32 {
    #![allow(unused_variables)]
    const STEP: u32 = 2;
    let x = 3;
    STEP
}

#[timed("lints.long.question_mark", long_task)]
fn long_question_mark(s: &str) -> Result<u32, AppError> {
    let n: u32 = s.parse()?;
    if n == 0 {
        return Err(AppError("zero".to_string()));
    }
    Ok(n)
}

#[timed("lints.long.option", long_task)]
fn long_first_char(s: &str) -> Option<char> {
    let c = s.chars().next()?;
    Some(c)
}

#[timed("lints.long.diverges", long_task)]
fn long_diverges(n: u32) -> u32 {
    if n > 0 {
        return n;
    }
    panic!("zero")
}

#[timed("lints.long.impl_iterator", long_task)]
fn long_evens(limit: u32) -> impl Iterator<Item = u32> {
    (0..limit).filter(|n| n % 2 == 0)
}

#[timed("lints.long.async", long_task)]
async fn long_fetch(s: &str) -> Result<u32, AppError> {
    tokio::task::yield_now().await;
    Ok(s.parse::<u32>()? + 1)
}

#[rustfmt::skip] // one-line bodies are the case under test
#[timed("lints.long.async_one_line", long_task)]
async fn long_fetch_one_line(n: u32) -> u32 { tokio::task::yield_now().await; n }

#[timed("lints.long.async_diverges", long_task)]
async fn long_diverges_async(n: u32) -> u32 {
    tokio::task::yield_now().await;
    if n > 0 {
        return n;
    }
    panic!("zero")
}

#[timed("lints.long.stacked")]
#[timed("lints.long.stacked.active", long_task)]
fn long_stacked(a: u32) -> u32 {
    a + 1
}

impl Service {
    #[rustfmt::skip] // one-line bodies are the case under test
    #[timed("lints.long.method.by_ref", long_task)]
    fn long_name(&self) -> &str { &self.name }

    #[timed("lints.long.method.by_mut", long_task)]
    fn long_hit(&mut self, ok: bool) -> Result<u32, AppError> {
        if !ok {
            return Err(AppError("refused".to_string()));
        }
        self.hits += 1;
        Ok(self.hits)
    }

    #[timed("lints.long.method.async", long_task)]
    async fn long_add(&mut self, n: u32) -> u32 {
        tokio::task::yield_now().await;
        self.hits += n;
        self.hits
    }

    /// The shape `#[async_trait]` generates.
    #[timed("lints.long.method.boxed", long_task)]
    fn long_boxed(&self) -> Pin<Box<dyn Future<Output = u32> + Send + '_>> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.hits
        })
    }
}

fn long_blocks(s: &str) -> Result<u32, AppError> {
    let seven = time!("lints.long.block.one_line", long_task, { 7 });
    let parsed = time!("lints.long.block.question_mark", long_task, {
        let n: u32 = s.parse()?;
        n + 1
    });
    time!("lints.long.block.empty", long_task, {});
    Ok(seven + parsed)
}

// ---------------------------------------------------------------- time! and metrics!

metrics! {
    /// Requests served.
    static REQUESTS: Counter = "lints.requests", status = "200";
    /// How long requests take.
    static LATENCY: Timer = "lints.latency";
    /// Bytes read so far, sampled.
    static READ: MonotonicCounter = "lints.read";
    /// When the last sync succeeded.
    static SYNCED: AgeGauge = "lints.synced";
    /// Imports in flight.
    static IMPORTS: LongTaskTimer = "lints.imports";
}

fn timed_blocks(s: &str) -> Result<u32, AppError> {
    let seven = time!("lints.block.one_line", { 7 });
    let parsed = time!("lints.block.question_mark", percentiles, {
        let n: u32 = s.parse()?;
        n + 1
    });
    time!("lints.block.empty", {});
    Ok(seven + parsed)
}

#[test]
fn every_shape_runs() {
    assert_eq!(seven(), 7);
    assert_eq!(plus_one(1), 2);
    empty();
    empty_default();
    assert_eq!(parse_one_line("3").ok(), Some(3));
    assert_eq!(inner_attributes(), 5);
    assert_eq!(inner_attributes_result("4").ok(), Some(4));
    assert_eq!(must_use_before(), 1);
    assert_eq!(inline_after(2), 4);
    assert_eq!(items_first(1), 6);
    assert_eq!(question_mark("1").ok().map(|n| n + 1), Some(3));
    assert!(question_mark("x").is_err());
    assert_eq!(early_return(0), 1);
    assert_eq!(early_return(2), 4);
    assert_eq!(
        early_return_result(0).err().map(|e| e.0),
        Some("zero".to_string())
    );
    assert_eq!(diverges(3), 3);
    assert_eq!(diverges_result("3").ok(), Some(3));
    assert_eq!(underscore_parameter(0, "1").ok(), Some(2));
    assert_eq!(first_char("ab"), Some('A'));
    assert_eq!(first_char(""), None);
    assert_eq!(generic(&5), "<5>");
    assert_eq!(first_of([4, 5]), Some(4));
    assert_eq!(evens(5).count(), 3);
    assert_eq!(
        displayable("8").ok().map(|d| format!("{d}")),
        Some("8".to_string())
    );

    let mut service = Service::new("svc");
    assert_eq!(service.name(), "svc");
    assert_eq!(service.hit(), 1);
    assert!(service.checked(true).is_ok());
    assert!(service.checked(false).is_err());
    assert_eq!(service.greet_twice(), "hello from svc hello from svc");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        assert_eq!(fetch(1).await, 2);
        assert_eq!(fetch_parsed("9").await.ok(), Some(9));
        assert_eq!(fetch_generic("six").await, "six");
        assert_eq!(diverges_async(4).await, 4);
        assert_eq!(service.add("2").await.ok(), Some(3));
        assert_eq!(service.name_later().await, "svc");
        assert_eq!(service.boxed(true).await.ok(), Some(3));
        assert!(service.boxed(false).await.is_err());
    });
    assert_eq!(service.into_name(), "svc");

    assert_eq!(long_seven(), 7);
    long_empty_default();
    assert_eq!(long_parse_one_line("3").ok(), Some(3));
    assert_eq!(long_inner_attributes(), 2);
    assert_eq!(long_question_mark("4").ok(), Some(4));
    assert!(long_question_mark("0").is_err());
    assert_eq!(long_first_char("ab"), Some('a'));
    assert_eq!(long_diverges(2), 2);
    assert_eq!(long_evens(4).count(), 2);
    assert_eq!(long_stacked(1), 2);
    let mut long = Service::new("long");
    assert_eq!(long.long_name(), "long");
    assert_eq!(long.long_hit(true).ok(), Some(1));
    assert!(long.long_hit(false).is_err());
    runtime.block_on(async {
        assert_eq!(long_fetch("1").await.ok(), Some(2));
        assert_eq!(long_fetch_one_line(3).await, 3);
        assert_eq!(long_diverges_async(5).await, 5);
        assert_eq!(long.long_add(2).await, 3);
        assert_eq!(long.long_boxed().await, 3);
    });
    assert_eq!(long_blocks("5").ok(), Some(13));
    assert!(long_blocks("x").is_err());
    let boxed_tasks = global().long_task_timer("lints.long.method.boxed", &[]);
    assert_eq!(boxed_tasks.active_tasks(), 0);

    REQUESTS.increment();
    LATENCY.record(std::time::Duration::from_millis(1));
    READ.set(10.0);
    SYNCED.set_now();
    let import = IMPORTS.start();
    assert_eq!(IMPORTS.active_tasks(), 1);
    drop(import);
    assert_eq!(timed_blocks("5").ok(), Some(13));
    assert!(timed_blocks("x").is_err());

    assert_eq!(global().timer("lints.block.one_line", &[]).count(), 2);
    assert_eq!(
        global()
            .percentile_timer("lints.block.question_mark", &[])
            .count(),
        2
    );
    assert_eq!(global().timer("lints.block.empty", &[]).count(), 1);
    let boxed = |r| {
        global()
            .timer("lints.method.boxed", &[("result", r)])
            .count()
    };
    assert_eq!((boxed("success"), boxed("failure")), (1, 1));
}
