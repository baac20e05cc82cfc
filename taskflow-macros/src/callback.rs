//! `#[callback]`: registers an `async fn(&TaskOutcome) -> Result<(), E>` as a named callback, and emits its typed
//! handle (a marker type named like the function) for `task_flow!`.

use crate::diag::{self, Errors};
use crate::emit;
use crate::item::{self, FnItem};
use crate::naming::unraw;
use crate::options::{self, key};
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ReturnType, Type, Visibility, parse_quote};

/// Expands `#[callback(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match analyze(args, item.clone()) {
        Ok(callback) => {
            let generated = generate(&callback);
            quote!(#item #generated)
        }
        Err(error) => diag::with_error(item, error),
    }
}

/// A validated callback function.
struct CallbackFn {
    vis: Visibility,
    ident: Ident,
    name: String,
    /// The `T` of the `&T` argument (checked to be `TaskOutcome`).
    outcome: Type,
    output: Type,
}

/// Parse and validate passes.
fn analyze(args: TokenStream, item: TokenStream) -> syn::Result<CallbackFn> {
    let name = options::parse_list.parse2(args).and_then(|entries| {
        let mut errors = Errors::default();
        let mut name = None;
        options::for_each_accepted(&entries, &[key::NAME], &mut errors, |_, entry, errors| {
            name = options::string(entry, errors).map(|lit| lit.value());
        });
        errors.finish().map(|()| name)
    });
    let function = item::parse(item, "#[callback]").and_then(validate);
    let (name, mut callback) = diag::join(name, function)?;
    if let Some(name) = name {
        callback.name = name;
    }
    Ok(callback)
}

/// Validates the signature of a callback function.
fn validate(fn_item: FnItem) -> syn::Result<CallbackFn> {
    const ONE_ARGUMENT: &str = "a callback takes one argument, `&TaskOutcome`";
    let mut errors = Errors::default();
    let FnItem { vis, sig } = fn_item;
    item::check_plain_async(&sig, "#[callback]", &mut errors);
    let outcome = match sig.inputs.first() {
        Some(FnArg::Typed(input)) => match &*input.ty {
            Type::Reference(reference) if reference.mutability.is_none() => {
                Some((*reference.elem).clone())
            }
            ty => {
                errors.at(
                    ty,
                    "a callback takes its argument by shared reference: `&TaskOutcome`",
                );
                None
            }
        },
        Some(FnArg::Receiver(receiver)) => {
            errors.at(receiver, "a callback cannot take `self`");
            None
        }
        None => {
            errors.at(&sig.ident, ONE_ARGUMENT);
            None
        }
    };
    for extra in sig.inputs.iter().skip(1) {
        errors.at(extra, ONE_ARGUMENT);
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => {
            errors.at(
                &sig.ident,
                "a callback must return `Result<(), E>` with `E: Into<CallbackError>`",
            );
            parse_quote!(())
        }
    };
    errors.finish()?;
    let outcome = outcome.unwrap_or_else(|| parse_quote!(()));
    Ok(CallbackFn {
        vis,
        name: unraw(&sig.ident),
        ident: sig.ident,
        outcome,
        output,
    })
}

/// The generation pass.
fn generate(callback: &CallbackFn) -> TokenStream {
    let CallbackFn {
        vis,
        ident,
        name,
        outcome,
        output,
    } = callback;
    let arg = Ident::new("outcome", Span::mixed_site());
    let result = Ident::new("result", Span::mixed_site());
    let outcome = quote_spanned!(outcome.span()=> <#outcome as ::taskflow::__private::IsTaskOutcome>::from_outcome(#arg));
    let convert = quote_spanned!(output.span()=> <#output as ::taskflow::__private::CallbackReturn>::into_result(#result));
    let call = emit::async_method(
        "call",
        &arg,
        quote!(::taskflow::TaskOutcome),
        quote!(::core::result::Result<(), ::taskflow::CallbackError>),
        quote! {
            let #result = #ident(#outcome).await;
            #convert
        },
    );
    let marker = emit::marker(vis, ident);
    let registration = emit::registration(
        &quote!(::taskflow),
        "CallbackRegistration",
        "callback",
        quote!(&#ident {}),
    );
    quote! {
        #marker

        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl ::taskflow::Callback for #ident {
                fn name(&self) -> &str {
                    <Self as ::taskflow::__private::CallbackDef>::NAME
                }

                #call
            }

            #[diagnostic::do_not_recommend]
            impl ::taskflow::__private::CallbackDef for #ident {
                const NAME: &'static str = #name;
            }

            #registration
        };
    }
}
