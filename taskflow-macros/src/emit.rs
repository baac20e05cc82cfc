//! Code shapes shared by the generators: the marker type of a function, a hand-desugared `#[async_trait]` method,
//! and a link-time registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{Ident, Visibility};

/// The hidden marker type of a `#[step]` / `#[callback]` function: same name, type namespace only (a braced struct
/// has no constructor in the value namespace), so the function stays callable. Spanned at the function's name.
pub(crate) fn marker(vis: &Visibility, ident: &Ident) -> TokenStream {
    quote_spanned! {ident.span()=>
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}
    }
}

/// `fn name(&self, arg: &arg_type) -> Output` of an `#[async_trait]` trait, desugared as the attribute does for the
/// trait's declaration (so the signatures match): `body` is the `async move` block's content.
pub(crate) fn async_method(
    name: &str,
    arg: &Ident,
    arg_type: TokenStream,
    output: TokenStream,
    body: TokenStream,
) -> TokenStream {
    let name = Ident::new(name, proc_macro2::Span::call_site());
    quote! {
        fn #name<'life0, 'life1, 'async_trait>(
            &'life0 self,
            #arg: &'life1 #arg_type,
        ) -> ::taskflow::__private::BoxFuture<'async_trait, #output>
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin(async move { #body })
        }
    }
}

/// `inventory::submit!` of `krate::__private::record { field: value, origin }`, the origin being the expansion's
/// location.
pub(crate) fn registration(
    krate: &TokenStream,
    record: &str,
    field: &str,
    value: TokenStream,
) -> TokenStream {
    let (record, field) = (
        Ident::new(record, proc_macro2::Span::call_site()),
        Ident::new(field, proc_macro2::Span::call_site()),
    );
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::#record {
                #field: #value,
                origin: #krate::__private::Origin {
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: ::core::line!(),
                },
            }
        }
    }
}
