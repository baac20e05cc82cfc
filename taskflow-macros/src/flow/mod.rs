//! `task_flow!`: declares flows. Parse ([`parse`]) → validate ([`check`]) → generate ([`codegen`]).

mod check;
mod codegen;
mod parse;

use proc_macro2::TokenStream;

/// Expands the input of `task_flow_impl!` (`$crate; flows...`).
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let input = match syn::parse2::<parse::Input>(input) {
        Ok(input) => input,
        Err(error) => return error.into_compile_error(),
    };
    let (krate, flows, checked) = check::check(input);
    match checked {
        Ok(()) => flows
            .iter()
            .map(|flow| codegen::generate(&krate, flow))
            .collect(),
        Err(error) => {
            let mut tokens: TokenStream = flows
                .iter()
                .map(|flow| codegen::fallback(&krate, flow))
                .collect();
            tokens.extend(error.into_compile_error());
            tokens
        }
    }
}
