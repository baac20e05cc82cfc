//! Procedural macros of [taskflow](https://docs.rs/taskflow): `#[step]`, `#[callback]` and `task_flow!`.
//! Use them through the `taskflow` crate, which re-exports and documents them.

mod callback;
mod diag;
mod duration;
mod emit;
mod flow;
mod item;
mod naming;
mod options;
mod step;
mod template;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Turns an `async fn` into a registered step. See `taskflow::step`.
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    step::expand(args.into(), item.into()).into()
}

/// Turns an `async fn` into a registered callback. See `taskflow::callback`.
#[proc_macro_attribute]
pub fn callback(args: TokenStream, item: TokenStream) -> TokenStream {
    callback::expand(args.into(), item.into()).into()
}

/// The implementation of `taskflow::task_flow!` (takes the runtime's path first).
#[doc(hidden)]
#[proc_macro]
pub fn task_flow_impl(input: TokenStream) -> TokenStream {
    flow::expand(input.into()).into()
}
