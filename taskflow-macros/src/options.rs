//! Option lists (`key` or `key = value`, comma separated) and the step options shared by `#[step(...)]` and the
//! per-step `[...]` of `task_flow!`.

use crate::diag::Errors;
use crate::duration;
use proc_macro2::TokenStream;
use quote::quote;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

/// Option keys.
pub(crate) mod key {
    /// Executor name (`#[step]`, `#[callback]`), step name (flow step) or flow name.
    pub(crate) const NAME: &str = "name";
    /// Display name of a step.
    pub(crate) const ALIAS: &str = "alias";
    /// Step timeout, or task deadline.
    pub(crate) const TIMEOUT: &str = "timeout";
    /// Automatic retries.
    pub(crate) const RETRIES: &str = "retries";
    /// A failure does not stop the task.
    pub(crate) const SKIP_ON_FAILED: &str = "skip_on_failed";
    /// Pin to a worker node.
    pub(crate) const NODE: &str = "node";
    /// Send to a queue.
    pub(crate) const QUEUE: &str = "queue";
    /// Delay after the previous step.
    pub(crate) const DELAY: &str = "delay";
    /// Task type of a flow.
    pub(crate) const TYPE: &str = "type";
    /// Callback of a flow.
    pub(crate) const CALLBACK: &str = "callback";
    /// Template globals the engine provides, declared by a flow.
    pub(crate) const GLOBALS: &str = "globals";
}

/// Keys `#[step(...)]` accepts.
pub(crate) const STEP_ATTR_KEYS: &[&str] = &[
    key::NAME,
    key::ALIAS,
    key::TIMEOUT,
    key::RETRIES,
    key::SKIP_ON_FAILED,
    key::NODE,
    key::QUEUE,
];

/// Keys a step of `task_flow!` accepts in `[...]`.
pub(crate) const FLOW_STEP_KEYS: &[&str] = &[
    key::NAME,
    key::ALIAS,
    key::TIMEOUT,
    key::RETRIES,
    key::SKIP_ON_FAILED,
    key::NODE,
    key::QUEUE,
    key::DELAY,
];

/// One `key` or `key = value` of an option list.
pub(crate) struct OptionEntry {
    /// The key (keywords such as `type` allowed).
    pub(crate) key: Ident,
    /// The value, absent for a flag.
    pub(crate) value: Option<Expr>,
}

impl Parse for OptionEntry {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Some(input.parse()?)
        } else {
            None
        };
        Ok(Self { key, value })
    }
}

/// A comma-separated option list filling `input`.
pub(crate) fn parse_list(input: ParseStream<'_>) -> syn::Result<Vec<OptionEntry>> {
    Ok(
        Punctuated::<OptionEntry, Token![,]>::parse_terminated(input)?
            .into_iter()
            .collect(),
    )
}

/// Calls `apply` on each entry whose key is in `allowed`, in order; reports unknown and repeated keys instead.
pub(crate) fn for_each_accepted(
    entries: &[OptionEntry],
    allowed: &[&'static str],
    errors: &mut Errors,
    mut apply: impl FnMut(&'static str, &OptionEntry, &mut Errors),
) {
    let mut seen: Vec<&'static str> = Vec::new();
    for entry in entries {
        let name = entry.key.unraw().to_string();
        match allowed.iter().find(|key| **key == name) {
            None => {
                let expected = allowed
                    .iter()
                    .map(|key| format!("`{key}`"))
                    .collect::<Vec<_>>();
                let message = format!(
                    "unknown option `{name}`; expected one of {}",
                    expected.join(", ")
                );
                errors.at(&entry.key, message);
            }
            Some(key) if seen.contains(key) => {
                errors.at(&entry.key, format!("duplicate option `{key}`"))
            }
            Some(key) => {
                seen.push(key);
                apply(key, entry, errors);
            }
        }
    }
}

/// The value of `entry`, or an error at its key when it has none.
fn value<'a>(entry: &'a OptionEntry, expected: &str, errors: &mut Errors) -> Option<&'a Expr> {
    if entry.value.is_none() {
        errors.at(
            &entry.key,
            format!(
                "option `{}` needs a value: `{} = {expected}`",
                entry.key, entry.key
            ),
        );
    }
    entry.value.as_ref()
}

/// The literal of an expression, if it is one.
fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, attrs }) if attrs.is_empty() => Some(lit),
        _ => None,
    }
}

/// A string-literal option.
pub(crate) fn string(entry: &OptionEntry, errors: &mut Errors) -> Option<LitStr> {
    let expr = value(entry, "\"...\"", errors)?;
    match literal(expr) {
        Some(Lit::Str(lit)) if lit.value().is_empty() => {
            errors.at(lit, format!("option `{}` cannot be empty", entry.key));
            None
        }
        Some(Lit::Str(lit)) => Some(lit.clone()),
        _ => {
            errors.at(
                expr,
                format!("option `{}` expects a string literal", entry.key),
            );
            None
        }
    }
}

/// A duration option, in whole seconds.
pub(crate) fn seconds(entry: &OptionEntry, errors: &mut Errors) -> Option<u32> {
    let lit = string(entry, errors)?;
    errors.ok(duration::seconds(&lit))
}

/// A non-negative integer option.
pub(crate) fn count(entry: &OptionEntry, errors: &mut Errors) -> Option<u32> {
    let expr = value(entry, "3", errors)?;
    match literal(expr) {
        Some(Lit::Int(lit)) => errors.ok(lit.base10_parse::<u32>()),
        _ => {
            errors.at(
                expr,
                format!("option `{}` expects an integer literal", entry.key),
            );
            None
        }
    }
}

/// A flag: present alone (`skip_on_failed`) or with a bool (`skip_on_failed = false`).
pub(crate) fn flag(entry: &OptionEntry, errors: &mut Errors) -> Option<bool> {
    let Some(expr) = &entry.value else {
        return Some(true);
    };
    match literal(expr) {
        Some(Lit::Bool(lit)) => Some(lit.value),
        _ => {
            errors.at(
                expr,
                format!(
                    "option `{}` is a flag: write `{}` or `{} = false`",
                    entry.key, entry.key, entry.key
                ),
            );
            None
        }
    }
}

/// Where steps run: a worker node or a queue.
#[derive(Clone)]
pub(crate) enum Route {
    /// `node = "..."`.
    Node(LitStr),
    /// `queue = "..."`.
    Queue(LitStr),
}

impl Route {
    /// Sets the route on an options value that has `node` and `queue` fields; one wins, the other is cleared.
    pub(crate) fn assign(&self, options: &Ident) -> TokenStream {
        let (set, clear, lit) = match self {
            Self::Node(lit) => (quote!(node), quote!(queue), lit),
            Self::Queue(lit) => (quote!(queue), quote!(node), lit),
        };
        quote! {
            #options.#set = ::core::option::Option::Some(::std::string::String::from(#lit));
            #options.#clear = ::core::option::Option::None;
        }
    }
}

/// Records a route option, rejecting a second one.
pub(crate) fn route(
    slot: &mut Option<Route>,
    key: &'static str,
    entry: &OptionEntry,
    errors: &mut Errors,
) {
    let Some(lit) = string(entry, errors) else {
        return;
    };
    if slot.is_some() {
        errors.at(
            &entry.key,
            "`node` and `queue` exclude each other: a step runs either on a node or from a queue",
        );
        return;
    }
    *slot = Some(if key == key::NODE {
        Route::Node(lit)
    } else {
        Route::Queue(lit)
    });
}

/// Options of a step, as given to `#[step(...)]` or to a flow's step `[...]`.
#[derive(Default)]
pub(crate) struct StepOptions {
    /// Executor name (`#[step]`) or step name (flow).
    pub(crate) name: Option<LitStr>,
    /// Display name.
    pub(crate) alias: Option<LitStr>,
    /// Per-attempt timeout, seconds.
    pub(crate) timeout: Option<u32>,
    /// Automatic retries.
    pub(crate) retries: Option<u32>,
    /// Skip on failure.
    pub(crate) skip_on_failed: Option<bool>,
    /// Node or queue.
    pub(crate) route: Option<Route>,
    /// Delay after the previous step, seconds.
    pub(crate) delay: Option<u32>,
}

impl StepOptions {
    /// Validates `entries` against `allowed` keys.
    pub(crate) fn from_entries(
        entries: &[OptionEntry],
        allowed: &[&'static str],
        errors: &mut Errors,
    ) -> Self {
        let mut options = Self::default();
        for_each_accepted(entries, allowed, errors, |key, entry, errors| match key {
            key::NAME => options.name = string(entry, errors),
            key::ALIAS => options.alias = string(entry, errors),
            key::TIMEOUT => options.timeout = seconds(entry, errors),
            key::RETRIES => options.retries = count(entry, errors),
            key::SKIP_ON_FAILED => options.skip_on_failed = flag(entry, errors),
            key::DELAY => options.delay = seconds(entry, errors),
            _ => route(&mut options.route, key, entry, errors),
        });
        options
    }

    /// Statements setting these options (except `name`) on `options`, a mutable `taskflow::StepOptions`.
    pub(crate) fn assignments(&self, options: &Ident) -> TokenStream {
        let alias = self.alias.as_ref().map(|alias| {
            quote!(#options.alias = ::core::option::Option::Some(::std::string::String::from(#alias));)
        });
        let timeout = self
            .timeout
            .map(|secs| quote!(#options.max_execution_seconds = #secs;));
        let retries = self
            .retries
            .map(|retries| quote!(#options.max_retries = #retries;));
        let skip = self
            .skip_on_failed
            .map(|skip| quote!(#options.skip_on_failed = #skip;));
        let delay = self
            .delay
            .map(|secs| quote!(#options.delay_seconds = #secs;));
        let route = self.route.as_ref().map(|route| route.assign(options));
        quote!(#alias #timeout #retries #skip #delay #route)
    }
}
