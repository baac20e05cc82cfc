//! Parse pass of `task_flow!`: the syntax tree, without judging it.
//!
//! ```text
//! $crate;
//! #[doc = "..."] pub flow Name {
//!     key = value, ...
//!     steps { path(arg = literal, ...) [option, key = value, ...], ... }
//! }
//! ```

use crate::options::{self, OptionEntry};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{
    Attribute, Expr, Ident, Path, Token, Visibility, braced, bracketed, parenthesized, token,
};

mod kw {
    syn::custom_keyword!(flow);
    syn::custom_keyword!(steps);
}

/// The whole input: the runtime's path, then flows.
pub(crate) struct Input {
    /// Path of the taskflow crate (`$crate` from the `task_flow!` wrapper).
    pub(crate) krate: Path,
    /// The flows, in order.
    pub(crate) flows: Vec<FlowDef>,
}

/// One `flow Name { ... }`.
pub(crate) struct FlowDef {
    /// Doc comments and other attributes, given to the generated struct.
    pub(crate) attrs: Vec<Attribute>,
    /// Visibility of the generated struct and its `builder()`.
    pub(crate) vis: Visibility,
    /// The flow's struct name.
    pub(crate) ident: Ident,
    /// The braces of the body (for errors about what is missing).
    pub(crate) brace: token::Brace,
    /// `key = value` options, in order.
    pub(crate) options: Vec<OptionEntry>,
    /// Every `steps { ... }` block (exactly one is valid).
    pub(crate) steps: Vec<StepsBlock>,
}

/// A `steps { ... }` block.
pub(crate) struct StepsBlock {
    /// The `steps` keyword.
    pub(crate) keyword: kw::steps,
    /// The steps, in order.
    pub(crate) calls: Vec<StepCall>,
}

/// One step of a flow: `path(arg = value, ...) [options]`.
pub(crate) struct StepCall {
    /// Path of the `#[step]` function.
    pub(crate) path: Path,
    /// Arguments, in order.
    pub(crate) args: Vec<ArgDef>,
    /// Per-step options.
    pub(crate) options: Vec<OptionEntry>,
}

/// `name = value`.
pub(crate) struct ArgDef {
    /// The Rust name of the argument.
    pub(crate) name: Ident,
    /// The value (a literal when valid).
    pub(crate) value: Expr,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = input.call(Path::parse_mod_style)?;
        input.parse::<Token![;]>()?;
        let mut flows = Vec::new();
        while !input.is_empty() {
            flows.push(input.parse()?);
        }
        if flows.is_empty() {
            return Err(
                input.error("expected a flow: `flow Name { type = \"...\", steps { ... } }`")
            );
        }
        Ok(Self { krate, flows })
    }
}

impl Parse for FlowDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<kw::flow>()?;
        let ident = input.parse()?;
        let content;
        let brace = braced!(content in input);
        let mut options = Vec::new();
        let mut steps = Vec::new();
        while !content.is_empty() {
            let block = content.peek(kw::steps) && content.peek2(token::Brace);
            if block {
                steps.push(content.parse()?);
            } else {
                options.push(content.parse()?);
            }
            if content.is_empty() || (block && !content.peek(Token![,])) {
                continue;
            }
            content.parse::<Token![,]>()?;
        }
        Ok(Self {
            attrs,
            vis,
            ident,
            brace,
            options,
            steps,
        })
    }
}

impl Parse for StepsBlock {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let keyword = input.parse()?;
        let content;
        braced!(content in input);
        let calls = Punctuated::<StepCall, Token![,]>::parse_terminated(&content)?
            .into_iter()
            .collect();
        Ok(Self { keyword, calls })
    }
}

impl Parse for StepCall {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let path = input.call(Path::parse_mod_style)?;
        let mut args = Vec::new();
        if input.peek(token::Paren) {
            let content;
            parenthesized!(content in input);
            args = Punctuated::<ArgDef, Token![,]>::parse_terminated(&content)?
                .into_iter()
                .collect();
        }
        let mut options = Vec::new();
        if input.peek(token::Bracket) {
            let content;
            bracketed!(content in input);
            options = options::parse_list(&content)?;
        }
        Ok(Self {
            path,
            args,
            options,
        })
    }
}

impl Parse for ArgDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if !input.peek(Ident) || !input.peek2(Token![=]) {
            return Err(input.error("expected a named argument: `name = value`"));
        }
        let name = input.parse()?;
        input.parse::<Token![=]>()?;
        let value = input.parse()?;
        Ok(Self { name, value })
    }
}
