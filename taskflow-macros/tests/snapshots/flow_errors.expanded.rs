struct Broken;
#[doc(hidden)]
const _: () = {
    impl ::taskflow::TaskMgr for Broken {
        fn name(&self) -> &str {
            "Broken"
        }
        fn task_type(&self) -> &str {
            "Broken"
        }
        fn steps(&self) -> ::std::vec::Vec<::taskflow::Step> {
            ::std::vec::Vec::new()
        }
    }
    impl Broken {
        #[allow(dead_code)]
        fn builder() -> ::taskflow::TaskBuilder<'static> {
            ::taskflow::TaskBuilder::new(&Broken)
        }
    }
};
::core::compile_error! {
    "invalid duration \"soon\": expected numbers with units (`d`, `h`, `m`, `s`, `ms`), such as \"30s\", \"5m\" or \"1h30m\""
}
::core::compile_error! {
    "unknown option `colour`; expected one of `name`, `alias`, `timeout`, `retries`, `skip_on_failed`, `node`, `queue`, `delay`"
}
::core::compile_error! {
    "template reads `steps.later`, but step `later` does not run before this one"
}
::core::compile_error! {
    "duplicate argument `greeting`"
}
