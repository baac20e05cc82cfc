//! Procedural macros of [taskflow](https://docs.rs/taskflow): `#[step]`, `#[callback]` and `task_flow!`.
//! Use them through the `taskflow` crate, which re-exports them.

use proc_macro::TokenStream;

/// Turns an `async fn` into a registered step. See `taskflow::step`.
#[proc_macro_attribute]
pub fn step(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// Turns an `async fn` into a registered callback. See `taskflow::callback`.
#[proc_macro_attribute]
pub fn callback(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}

/// The implementation of `taskflow::task_flow!` (takes the runtime's path first).
#[doc(hidden)]
#[proc_macro]
pub fn task_flow_impl(_input: TokenStream) -> TokenStream {
    TokenStream::new()
}
