//! Generate pass of `task_flow!`: the flow's struct, its `TaskMgr` impl, `builder()`, its registration, and the
//! type-level checks against the steps' and callback's handles, spanned at the user's tokens so that rustc's errors
//! (worded by `#[diagnostic::on_unimplemented]` in `taskflow::__private`) point there.

use super::check::{ArgValue, Flow, FlowStep};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
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
        let alias = Ident::new("__TaskflowCallback", Span::call_site());
        let check = quote_spanned!(path.span()=> <#path as #krate::__private::CallbackDef>);
        let set = quote! {
            #options.callback = ::core::option::Option::Some(::std::string::String::from(
                <#alias as #krate::__private::CallbackDef>::NAME,
            ));
        };
        (
            quote!(type #alias = #path; const _: &str = #check::NAME;),
            set,
        )
    });
    let (callback_items, callback_set) = callback.unzip();
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
    quote! {
        #(#attrs)*
        #vis struct #ident;

        #[doc(hidden)]
        #[allow(non_local_definitions, non_upper_case_globals, clippy::all)]
        const _: () = {
            #callback_items
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
                    #callback_set
                    #timeout
                    #route
                    #options
                }

                fn steps(&self) -> ::std::vec::Vec<#krate::Step> {
                    ::std::vec![#(#step_builds),*]
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

            #krate::__private::inventory::submit! {
                #krate::FlowRegistration {
                    flow: &#ident,
                    origin: #krate::Origin {
                        module: ::core::module_path!(),
                        file: ::core::file!(),
                        line: ::core::line!(),
                    },
                }
            }
        };
    }
}

/// The checks of one step (items of the hidden const) and the expression building its `Step`.
fn generate_step(krate: &Path, index: usize, step: &FlowStep) -> (TokenStream, TokenStream) {
    let FlowStep {
        path,
        name,
        args,
        options,
    } = step;
    let alias = format_ident!("__TaskflowStep{}", index);
    let step_def = quote!(#krate::__private::StepDef);
    let is_step = quote_spanned!(path.span()=> <#path as #step_def>);
    let step_args = quote_spanned!(path.span()=> <#alias as #step_def>::ARGS);
    let ids = args.iter().map(|arg| arg.id);
    let missing = quote_spanned! {path.span()=>
        if let ::core::option::Option::Some(message) = #krate::__private::missing_arg(#step_args, &[#(#ids),*]) {
            ::core::panic!("{}", message)
        }
    };
    let mut checks = quote! {
        type #alias = #path;
        const _: &str = #is_step::NAME;
        const _: () = #missing;
    };
    let (params_var, options_var) = (
        Ident::new("params", Span::mixed_site()),
        Ident::new("options", Span::mixed_site()),
    );
    let mut inserts = TokenStream::new();
    for arg in args {
        let key = format_ident!("__TASKFLOW_KEY_{}_{}", index, arg.ident);
        let id = arg.id;
        let handle = Ident::new(&alias.to_string(), arg.ident.span());
        let has_arg =
            quote_spanned!(arg.ident.span()=> <#handle as #krate::__private::HasArg<#id>>);
        checks.extend(quote!(const #key: &str = #has_arg::KEY;));
        let literal_check = match &arg.value {
            ArgValue::Str(_) => None,
            ArgValue::Int { tokens, .. } => {
                Some((tokens.span(), quote!(IntArg > ::Int), tokens.clone()))
            }
            ArgValue::Float { tokens, .. } => {
                Some((tokens.span(), quote!(FloatArg > ::Float), tokens.clone()))
            }
            ArgValue::Bool(lit) => Some((lit.span(), quote!(BoolArg > ::Bool), quote!(#lit))),
        };
        if let Some((span, trait_assoc, value)) = literal_check {
            let ty = quote_spanned!(span=> <#has_arg::Type as #krate::__private::#trait_assoc);
            checks.extend(quote!(const _: #ty = #value;));
        }
        let param = arg.value.param();
        inserts.extend(quote! {
            #params_var.insert(::std::string::String::from(#key), ::std::string::String::from(#param));
        });
    }
    let assignments = options.assignments(&options_var);
    let build = quote! {{
        let step = &<#alias as #step_def>::INSTANCE;
        #[allow(unused_mut)]
        let mut #options_var = #krate::StepMgr::options(step);
        #assignments
        #[allow(unused_mut)]
        let mut #params_var = ::std::collections::BTreeMap::new();
        #inserts
        #krate::StepMgr::build_step(step, #name, #params_var, #options_var)
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
