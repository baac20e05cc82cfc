//! Error accumulation: every pass reports all it finds, combined into one `syn::Error`.

use proc_macro2::TokenStream;

/// Collects errors across a pass; [`finish`](Self::finish) merges them.
#[derive(Default)]
#[must_use = "errors must be reported with `finish`"]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    /// Records an error.
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// Records a message at the span of `tokens`.
    pub(crate) fn at(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records the error of a fallible step and gives its value, if any.
    pub(crate) fn ok<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// All errors combined, or `Ok` when there were none.
    pub(crate) fn finish(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        combined.extend(errors);
        Err(combined)
    }
}

/// `tokens` followed by the compile errors of `error` (the user's item stays, so other diagnostics keep working).
pub(crate) fn with_error(mut tokens: TokenStream, error: syn::Error) -> TokenStream {
    tokens.extend(error.into_compile_error());
    tokens
}

/// Both results, or every error of the two combined.
pub(crate) fn join<A, B>(a: syn::Result<A>, b: syn::Result<B>) -> syn::Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(mut a), Err(b)) => {
            a.combine(b);
            Err(a)
        }
    }
}
