//! Generate pass of `task_flow!`: the flow's struct, its `TaskMgr` impl, `builder()`, its registration, and the
//! type-level checks against the steps' and callback's handles, spanned at the user's tokens so that rustc's errors
//! (worded by `#[diagnostic::on_unimplemented]` in `taskflow::__private`) point there.

use super::check::{ArgValue, Flow, FlowStep};
use crate::emit;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Path};

/// Everything a valid flow expands to.
pub(crate) fn generate(krate: &Path, flow: &Flow) -> TokenStream {
    let Flow {
        attrs,
        vis,
        ident,
        name,
        task_type,
        ..
    } = flow;
    let options = Ident::new("options", Span::mixed_site());
    let callback = flow.callback.as_ref().map(|path| {
        quote! {
            #options.callback = ::core::option::Option::Some(::std::string::String::from(
                <#path as #krate::__private::CallbackDef>::NAME,
            ));
        }
    });
    let timeout = flow
        .timeout
        .map(|secs| quote!(#options.max_execution_seconds = #secs;));
    let route = flow.route.as_ref().map(|route| route.assign(&options));
    let (step_items, step_builds): (Vec<_>, Vec<_>) = flow
        .steps
        .iter()
        .enumerate()
        .map(|(index, step)| generate_step(krate, index, step))
        .unzip();
    let registration =
        emit::registration(&quote!(#krate), "FlowRegistration", "flow", quote!(&#ident));
    quote! {
        #(#attrs)*
        #vis struct #ident;

        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            #(#step_items)*

            #[automatically_derived]
            impl #krate::TaskMgr for #ident {
                fn name(&self) -> &str {
                    #name
                }

                fn task_type(&self) -> &str {
                    #task_type
                }

                fn options(&self) -> #krate::TaskOptions {
                    #[allow(unused_mut)]
                    let mut #options = <#krate::TaskOptions as ::core::default::Default>::default();
                    #callback
                    #timeout
                    #route
                    #options
                }

                fn steps(&self) -> ::std::vec::Vec<#krate::Step> {
                    ::std::vec::Vec::from([#(#step_builds),*])
                }
            }

            #[automatically_derived]
            impl #ident {
                /// Starts a task of this flow: set its index, creator and params, then `build()` it.
                #[allow(dead_code)]
                #vis fn builder() -> #krate::TaskBuilder<'static> {
                    #krate::TaskBuilder::new(&#ident)
                }
            }

            #registration
        };
    }
}

/// The items checking one step (in the hidden const) and the expression building its `Step`.
///
/// The step's path is written as the user wrote it wherever it must be a step, so that an unknown path or a type that
/// is not a step gives the same error at the same span each time (rustc reports it once). Arguments go through an
/// alias of the path whose token carries the argument's span, so that an unknown argument is reported there.
fn generate_step(krate: &Path, index: usize, step: &FlowStep) -> (TokenStream, TokenStream) {
    let FlowStep {
        path,
        name,
        args,
        options,
    } = step;
    let private = quote!(#krate::__private);
    let alias = format!("__TaskflowStep{index}");
    let ids = args.iter().map(|arg| arg.id);
    let missing = quote_spanned! {path.span()=>
        if let ::core::option::Option::Some(message) =
            #private::missing_arg(<#path as #private::StepDef>::ARGS, &[#(#ids),*])
        {
            ::core::panic!("{}", message)
        }
    };
    let alias_item = (!args.is_empty()).then(|| {
        let alias = Ident::new(&alias, Span::call_site());
        quote!(type #alias = #path;)
    });
    let checks = quote! {
        const _: () = #missing;
        #alias_item
    };
    let (params, options_var) = (
        Ident::new("params", Span::mixed_site()),
        Ident::new("options", Span::mixed_site()),
    );
    let inserts = args.iter().map(|arg| {
        let (id, param) = (arg.id, arg.value.param());
        let handle = Ident::new(&alias, arg.ident.span());
        let has_arg = quote_spanned!(arg.ident.span()=> <#handle as #private::HasArg<#id>>);
        let check = match &arg.value {
            ArgValue::Str(_) => None,
            ArgValue::Int { tokens, negative: false, text } if text == "0" => Some((tokens, quote!(ZeroArg>::Zero))),
            ArgValue::Int { tokens, negative: false, .. } => Some((tokens, quote!(IntArg>::Int))),
            ArgValue::Int { tokens, negative: true, .. } => Some((tokens, quote!(SignedArg>::Signed))),
            ArgValue::Float { tokens, .. } => Some((tokens, quote!(FloatArg>::Float))),
            ArgValue::Bool(tokens) => Some((tokens, quote!(BoolArg>::Bool))),
        };
        let check = check.map(|(value, projection)| {
            let span = value.span();
            let ty = quote_spanned!(span=> <#has_arg::Type as #private::#projection);
            quote_spanned!(span=> let _: #ty = #value;)
        });
        quote! {
            #check
            #params.insert(::std::string::String::from(#has_arg::KEY), ::std::string::String::from(#param));
        }
    });
    let assignments = options.assignments(&options_var);
    let build = quote! {{
        #[allow(unused_mut)]
        let mut #params = ::std::collections::BTreeMap::new();
        #(#inserts)*
        #[allow(unused_mut)]
        let mut #options_var = <#path as #private::StepDef>::default_options();
        #assignments
        <#path as #private::StepDef>::build(#name, #params, #options_var)
    }};
    (checks, build)
}

/// What a flow with errors still expands to: its struct, so that code naming it is checked as usual.
pub(crate) fn fallback(krate: &Path, flow: &Flow) -> TokenStream {
    let Flow {
        attrs,
        vis,
        ident,
        name,
        task_type,
        ..
    } = flow;
    quote! {
        #(#attrs)*
        #vis struct #ident;

        #[doc(hidden)]
        const _: () = {
            impl #krate::TaskMgr for #ident {
                fn name(&self) -> &str {
                    #name
                }

                fn task_type(&self) -> &str {
                    #task_type
                }

                fn steps(&self) -> ::std::vec::Vec<#krate::Step> {
                    ::std::vec::Vec::new()
                }
            }

            impl #ident {
                #[allow(dead_code)]
                #vis fn builder() -> #krate::TaskBuilder<'static> {
                    #krate::TaskBuilder::new(&#ident)
                }
            }
        };
    }
}
