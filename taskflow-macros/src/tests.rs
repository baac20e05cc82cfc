//! Expansion snapshots: each case expands a macro input, pretty-prints it and compares it with
//! `tests/snapshots/<case>.expanded.rs`. Rewrite the snapshots after a deliberate change with
//! `UPDATE_SNAPSHOTS=1 cargo test -p taskflow-macros`, then review the diff.

use proc_macro2::TokenStream;
use quote::quote;
use std::path::PathBuf;

/// The expansion, pretty-printed (or as raw tokens if it is not a valid file).
fn pretty(tokens: TokenStream) -> String {
    match syn::parse2::<syn::File>(tokens.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(error) => format!("// does not parse as a file: {error}\n{tokens}\n"),
    }
}

/// Compares `actual` with the snapshot `name`, or rewrites it when `UPDATE_SNAPSHOTS` is set.
fn assert_snapshot(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/snapshots/{name}.expanded.rs"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); create it with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "expansion of `{name}` differs from {}; rerun with UPDATE_SNAPSHOTS=1 and review the diff\n--- actual ---\n{actual}",
        path.display()
    );
}

/// The messages of the `compile_error!`s of an expansion.
fn errors(tokens: &TokenStream) -> Vec<String> {
    let file: syn::File = syn::parse2(tokens.clone()).expect("the expansion parses");
    file.items
        .iter()
        .filter_map(|item| match item {
            syn::Item::Macro(item)
                if item
                    .mac
                    .path
                    .segments
                    .last()
                    .is_some_and(|s| s.ident == "compile_error") =>
            {
                item.mac
                    .parse_body::<syn::LitStr>()
                    .ok()
                    .map(|lit| lit.value())
            }
            _ => None,
        })
        .collect()
}

#[test]
fn step_with_context_options_and_optional_argument() {
    let args = quote!(timeout = "10s", retries = 2, node = "node-a");
    let item = quote! {
        /// Adds two numbers.
        pub async fn sum(ctx: &StepContext, sum_a: i64, sum_b: Option<i64>) -> Result<i64, StepError> {
            Ok(sum_a + sum_b.unwrap_or(0))
        }
    };
    assert_snapshot("step", &pretty(crate::step::expand(args, item)));
}

#[test]
fn step_errors_keep_the_item() {
    let args = quote!(timeout = "0s", retry = 1, name = 3);
    let item = quote! {
        fn sum(&self, (a, b): (i64, i64), c: &str) {}
    };
    let expanded = crate::step::expand(args, item);
    assert_eq!(
        errors(&expanded),
        [
            "duration \"0s\" is zero: leave the option out instead",
            "unknown option `retry`; expected one of `name`, `alias`, `timeout`, `retries`, `skip_on_failed`, \
             `node`, `queue`",
            "option `name` expects a string literal",
            "`#[step]` requires an `async fn`",
            "a step cannot take `self`: use a free `async fn`",
            "a step argument must be a plain name: the name gives its param key",
            "a step argument is decoded from a param and must be an owned type; only the first argument may be a \
             reference, `&StepContext`",
            "a step must return `Result<T, E>`: `T` is its output, `E: Into<StepError>`",
        ]
        .map(str::to_owned),
        "{expanded}"
    );
    assert!(
        expanded.to_string().starts_with("fn sum"),
        "the item comes first, unchanged: {expanded}"
    );
}

#[test]
fn callback_with_name() {
    let args = quote!(name = "notify.ops");
    let item = quote! {
        async fn notify(outcome: &TaskOutcome) -> Result<(), CallbackError> {
            Ok(())
        }
    };
    assert_snapshot("callback", &pretty(crate::callback::expand(args, item)));
}

#[test]
fn flow_with_options_paths_and_literals() {
    let input = quote! {
        ::taskflow;
        /// Sums two numbers, then greets.
        pub flow Example {
            type = "example-test",
            callback = notify,
            timeout = "5m",
            steps {
                math::sum(sum_a = "{{ params.a }}", sum_b = -5, ratio = 0.5, loud = true),
                hello(greeting = "sum is {{ steps.sum.output }}") [skip_on_failed, node = "node-a", delay = "30s"],
            }
        }
    };
    assert_snapshot("flow", &pretty(crate::flow::expand(input)));
}

#[test]
fn flow_errors_still_declare_the_struct() {
    let input = quote! {
        ::taskflow;
        flow Broken {
            timeout = "soon",
            steps {
                hello(greeting = "{{ steps.later.output }}", greeting = "{{ oops"),
                hello() [name = "later", colour = "red"],
            }
        }
    };
    let expanded = crate::flow::expand(input);
    assert_eq!(
        errors(&expanded),
        [
            "invalid duration \"soon\": expected numbers with units (`d`, `h`, `m`, `s`, `ms`), such as \
             \"30s\", \"5m\" or \"1h30m\"",
            "unknown option `colour`; expected one of `name`, `alias`, `timeout`, `retries`, `skip_on_failed`, \
             `node`, `queue`, `delay`",
            "template reads `steps.later`, but step `later` does not run before this one",
            "duplicate argument `greeting`",
        ]
        .map(str::to_owned),
        "{expanded}"
    );
    assert_snapshot("flow_errors", &pretty(expanded));
}
