//! `#[step]`: registers an `async fn` as a step executor and emits its typed handle for `task_flow!`.
//!
//! Passes: parse the options and the signature, validate them into [`Step`], generate the marker type (named like the
//! function, type namespace only), its `StepMgr` / `StepDef` / `HasArg` impls and its inventory registration.

use crate::diag::{self, Errors};
use crate::emit;
use crate::item::{self, FnItem};
use crate::naming::{arg_id, param_key, unraw};
use crate::options::{self, STEP_ATTR_KEYS, StepOptions};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{
    FnArg, GenericArgument, Ident, Pat, PathArguments, ReturnType, Type, Visibility, parse_quote,
};

/// Expands `#[step(args)] item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    match analyze(args, item.clone()) {
        Ok(step) => {
            let generated = generate(&step);
            quote!(#item #generated)
        }
        Err(error) => diag::with_error(item, error),
    }
}

/// A validated step function.
struct Step {
    vis: Visibility,
    /// The function (and marker type) name.
    ident: Ident,
    /// The executor name.
    name: String,
    /// The `T` of a leading `&T` argument (checked to be `StepContext`).
    context: Option<Type>,
    args: Vec<Arg>,
    /// The declared return type.
    output: Type,
    options: StepOptions,
}

/// An argument decoded from a param.
struct Arg {
    /// The Rust name.
    name: String,
    /// The param key.
    key: String,
    ty: Type,
    /// Not an `Option<T>`.
    required: bool,
}

/// Parse and validate passes.
fn analyze(args: TokenStream, item: TokenStream) -> syn::Result<Step> {
    let options = options::parse_list.parse2(args).and_then(|entries| {
        let mut errors = Errors::default();
        let options = StepOptions::from_entries(&entries, STEP_ATTR_KEYS, &mut errors);
        errors.finish().map(|()| options)
    });
    let function = item::parse(item, "#[step]").and_then(validate);
    let (options, mut step) = diag::join(options, function)?;
    if let Some(name) = &options.name {
        step.name = name.value();
    }
    step.options = options;
    Ok(step)
}

/// Validates the signature of a step function (options are filled in by the caller).
fn validate(fn_item: FnItem) -> syn::Result<Step> {
    let mut errors = Errors::default();
    let FnItem { vis, sig } = fn_item;
    item::check_plain_async(&sig, "#[step]", &mut errors);
    let mut context = None;
    let mut args: Vec<Arg> = Vec::new();
    for (position, input) in sig.inputs.iter().enumerate() {
        let FnArg::Typed(input) = input else {
            errors.at(input, "a step cannot take `self`: use a free `async fn`");
            continue;
        };
        match ungrouped(&input.ty) {
            Type::Reference(reference) if position == 0 && reference.mutability.is_none() => {
                context = Some((*reference.elem).clone());
                continue;
            }
            Type::Reference(_) => {
                errors.at(
                    &input.ty,
                    "a step argument is decoded from a param and must be an owned type; only the first argument \
                     may be a reference, `&StepContext`",
                );
                continue;
            }
            Type::ImplTrait(_) => {
                let message =
                    "a step argument cannot be `impl Trait`: it needs a concrete type to decode";
                errors.at(&input.ty, message);
                continue;
            }
            _ => {}
        }
        let ident = match &*input.pat {
            Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => &pat.ident,
            pat => {
                errors.at(
                    pat,
                    "a step argument must be a plain name: the name gives its param key",
                );
                continue;
            }
        };
        let name = unraw(ident);
        let key = param_key(&name);
        if key.is_empty() {
            errors.at(
                ident,
                "a step argument needs a name with letters or digits: it gives its param key",
            );
        } else if let Some(other) = args.iter().find(|arg| arg.key == key) {
            let message = format!(
                "arguments `{}` and `{name}` have the same param key `{key}`",
                other.name
            );
            errors.at(ident, message);
        } else {
            let required = !is_option(&input.ty);
            args.push(Arg {
                name,
                key,
                ty: (*input.ty).clone(),
                required,
            });
        }
    }
    let output = match &sig.output {
        ReturnType::Type(_, ty) => (**ty).clone(),
        ReturnType::Default => {
            errors.at(
                &sig.ident,
                "a step must return `Result<T, E>`: `T` is its output, `E: Into<StepError>`",
            );
            parse_quote!(())
        }
    };
    errors.finish()?;
    let name = unraw(&sig.ident);
    Ok(Step {
        vis,
        ident: sig.ident,
        name,
        context,
        args,
        output,
        options: StepOptions::default(),
    })
}

/// Whether a type is spelled `Option<T>` (such an argument may be left out of a flow).
fn is_option(ty: &Type) -> bool {
    let Type::Path(path) = ungrouped(ty) else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    last.ident == "Option"
        && args.args.len() == 1
        && matches!(args.args[0], GenericArgument::Type(_))
}

/// The type inside invisible groups (a `$t:ty` of a user's `macro_rules!`) and parentheses.
fn ungrouped(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => ungrouped(&group.elem),
        Type::Paren(paren) => ungrouped(&paren.elem),
        other => other,
    }
}

/// The generation pass.
fn generate(step: &Step) -> TokenStream {
    let Step {
        vis,
        ident,
        name,
        options,
        ..
    } = step;
    let alias = options
        .alias
        .as_ref()
        .map(|alias| quote!(fn alias(&self) -> &str { #alias }));
    let options_var = Ident::new("options", Span::mixed_site());
    let assignments = options.assignments(&options_var);
    let run = generate_run(step);
    let args_info = step.args.iter().map(|arg| {
        let id = arg_id(&arg.name);
        let required = arg.required;
        let missing = format!("missing argument `{}` of step `{ident}`", arg.name);
        quote!(::taskflow::__private::ArgInfo { id: #id, required: #required, missing: #missing })
    });
    let has_args = step.args.iter().map(|arg| {
        let id = arg_id(&arg.name);
        let (ty, key) = (&arg.ty, &arg.key);
        quote! {
            #[diagnostic::do_not_recommend]
            impl ::taskflow::__private::HasArg<#id> for #ident {
                type Type = #ty;
                const KEY: &'static str = #key;
            }
        }
    });
    let marker = emit::marker(vis, ident);
    let registration = emit::registration(
        &quote!(::taskflow),
        "StepRegistration",
        "step",
        quote!(&#ident {}),
    );
    quote! {
        #marker

        #[doc(hidden)]
        #[allow(non_local_definitions, clippy::all)]
        const _: () = {
            #[automatically_derived]
            impl ::taskflow::StepMgr for #ident {
                fn name(&self) -> &str {
                    <Self as ::taskflow::__private::StepDef>::NAME
                }
                #alias
                fn options(&self) -> ::taskflow::StepOptions {
                    #[allow(unused_mut)]
                    let mut #options_var = <::taskflow::StepOptions as ::core::default::Default>::default();
                    #assignments
                    #options_var
                }
                #run
            }

            #[diagnostic::do_not_recommend]
            impl ::taskflow::__private::StepDef for #ident {
                const NAME: &'static str = #name;
                const INSTANCE: Self = #ident {};
                const ARGS: &'static [::taskflow::__private::ArgInfo] = &[#(#args_info),*];
            }

            #(#has_args)*

            #registration
        };
    }
}

/// `StepMgr::run`, desugared as `#[async_trait]` would: decode each param, call the function, encode its output.
fn generate_run(step: &Step) -> TokenStream {
    let ctx = Ident::new("ctx", Span::mixed_site());
    let step_name = Ident::new("step", Span::mixed_site());
    let result = Ident::new("result", Span::mixed_site());
    let context = step.context.as_ref().map(|ty| {
        quote_spanned!(ty.span()=> <#ty as ::taskflow::__private::IsStepContext>::from_context(#ctx),)
    });
    let (vars, decodes): (Vec<_>, Vec<_>) = step
        .args
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            let var = format_ident!("arg{}", i, span = Span::mixed_site());
            let (ty, key) = (&arg.ty, &arg.key);
            let decode = quote_spanned! {ty.span()=>
                let #var = <#ty as ::taskflow::__private::StepParam>::decode(#step_name, #key, #ctx.param(#key))?;
            };
            (var, decode)
        })
        .unzip();
    let (ident, output) = (&step.ident, &step.output);
    let encode = quote_spanned! {output.span()=>
        <#output as ::taskflow::__private::StepReturn>::into_output(#result, #step_name)
    };
    let body = quote! {
        let #step_name = #ctx.step_name();
        #(#decodes)*
        let #result = #ident(#context #(#vars),*).await;
        #encode
    };
    let output = quote! {
        ::core::result::Result<::taskflow::__private::serde_json::Value, ::taskflow::StepError>
    };
    emit::async_method("run", &ctx, quote!(::taskflow::StepContext), output, body)
}
