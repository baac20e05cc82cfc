//! The `async fn` items under `#[step]` and `#[callback]`: only the signature is parsed, the body passes through.

use crate::diag::Errors;
use proc_macro2::TokenStream;
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Signature, Token, Visibility};

/// The parts of a function item the macros read.
pub(crate) struct FnItem {
    /// Visibility, given to the marker type.
    pub(crate) vis: Visibility,
    /// The signature.
    pub(crate) sig: Signature,
}

/// Parses `item` as a function, reading its signature only; `what` names the attribute in errors (`#[step]`).
pub(crate) fn parse(item: TokenStream, what: &str) -> syn::Result<FnItem> {
    let parser = |input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let looks_like_fn = input.peek(Token![fn])
            || input.peek(Token![async])
            || input.peek(Token![const])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        if !looks_like_fn {
            return Err(input.error(format!("`{what}` applies to an `async fn`")));
        }
        let sig: Signature = input.parse()?;
        input.parse::<TokenStream>()?;
        Ok(FnItem { vis, sig })
    };
    parser.parse2(item)
}

/// Reports what makes `sig` something other than a plain, non-generic `async fn`.
pub(crate) fn check_plain_async(sig: &Signature, what: &str, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.at(sig.fn_token, format!("`{what}` requires an `async fn`"));
    }
    if let Some(token) = &sig.constness {
        errors.at(token, format!("`{what}` cannot be a `const fn`"));
    }
    if let Some(token) = &sig.unsafety {
        errors.at(token, format!("`{what}` cannot be an `unsafe fn`"));
    }
    if let Some(abi) = &sig.abi {
        errors.at(abi, format!("`{what}` cannot have an ABI"));
    }
    // Lifetime parameters are fine (`ctx: &'a StepContext`); type and const parameters are not.
    let generic = format!("`{what}` cannot be generic: it is registered once, with concrete types");
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
    {
        errors.at(param, generic);
    } else if let Some(where_clause) = &sig.generics.where_clause {
        errors.at(where_clause, generic);
    }
    if let Some(variadic) = &sig.variadic {
        errors.at(variadic, format!("`{what}` cannot be variadic"));
    }
}
