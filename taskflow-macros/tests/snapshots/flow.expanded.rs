/// Sums two numbers, then greets.
pub struct Example;
#[doc(hidden)]
#[allow(non_local_definitions, clippy::all)]
const _: () = {
    const _: () = if let ::core::option::Option::Some(message) = ::taskflow::__private::missing_arg(
        <math::sum as ::taskflow::__private::StepDef>::ARGS,
        &[
            8571778031903556924u64, 8571781330438441557u64, 18143072231443901924u64,
            14859341842412199725u64,
        ],
    ) {
        ::core::panic!("{}", message)
    };
    type __TaskflowStep0 = math::sum;
    const _: () = if let ::core::option::Option::Some(message) = ::taskflow::__private::missing_arg(
        <hello as ::taskflow::__private::StepDef>::ARGS,
        &[15842577513599806198u64],
    ) {
        ::core::panic!("{}", message)
    };
    type __TaskflowStep1 = hello;
    #[automatically_derived]
    impl ::taskflow::TaskMgr for Example {
        fn name(&self) -> &str {
            "Example"
        }
        fn task_type(&self) -> &str {
            "example-test"
        }
        fn options(&self) -> ::taskflow::TaskOptions {
            #[allow(unused_mut)]
            let mut options = <::taskflow::TaskOptions as ::core::default::Default>::default();
            options.callback = ::core::option::Option::Some(
                ::std::string::String::from(
                    <notify as ::taskflow::__private::CallbackDef>::NAME,
                ),
            );
            options.max_execution_seconds = 300u32;
            options
        }
        fn steps(&self) -> ::std::vec::Vec<::taskflow::Step> {
            ::std::vec::Vec::from([
                {
                    #[allow(unused_mut)]
                    let mut params = ::std::collections::BTreeMap::new();
                    params
                        .insert(
                            ::std::string::String::from(
                                <__TaskflowStep0 as ::taskflow::__private::HasArg<
                                    8571778031903556924u64,
                                >>::KEY,
                            ),
                            ::std::string::String::from("{{ params.a }}"),
                        );
                    let _: <<__TaskflowStep0 as ::taskflow::__private::HasArg<
                        8571781330438441557u64,
                    >>::Type as ::taskflow::__private::SignedArg>::Signed = -5;
                    params
                        .insert(
                            ::std::string::String::from(
                                <__TaskflowStep0 as ::taskflow::__private::HasArg<
                                    8571781330438441557u64,
                                >>::KEY,
                            ),
                            ::std::string::String::from("-5"),
                        );
                    let _: <<__TaskflowStep0 as ::taskflow::__private::HasArg<
                        18143072231443901924u64,
                    >>::Type as ::taskflow::__private::FloatArg>::Float = 0.5;
                    params
                        .insert(
                            ::std::string::String::from(
                                <__TaskflowStep0 as ::taskflow::__private::HasArg<
                                    18143072231443901924u64,
                                >>::KEY,
                            ),
                            ::std::string::String::from("0.5"),
                        );
                    let _: <<__TaskflowStep0 as ::taskflow::__private::HasArg<
                        14859341842412199725u64,
                    >>::Type as ::taskflow::__private::BoolArg>::Bool = true;
                    params
                        .insert(
                            ::std::string::String::from(
                                <__TaskflowStep0 as ::taskflow::__private::HasArg<
                                    14859341842412199725u64,
                                >>::KEY,
                            ),
                            ::std::string::String::from("true"),
                        );
                    #[allow(unused_mut)]
                    let mut options = <math::sum as ::taskflow::__private::StepDef>::default_options();
                    <math::sum as ::taskflow::__private::StepDef>::build(
                        "sum",
                        params,
                        options,
                    )
                },
                {
                    #[allow(unused_mut)]
                    let mut params = ::std::collections::BTreeMap::new();
                    params
                        .insert(
                            ::std::string::String::from(
                                <__TaskflowStep1 as ::taskflow::__private::HasArg<
                                    15842577513599806198u64,
                                >>::KEY,
                            ),
                            ::std::string::String::from("sum is {{ steps.sum.output }}"),
                        );
                    #[allow(unused_mut)]
                    let mut options = <hello as ::taskflow::__private::StepDef>::default_options();
                    options.skip_on_failed = true;
                    options.delay_seconds = 30u32;
                    options.node = ::core::option::Option::Some(
                        ::std::string::String::from("node-a"),
                    );
                    options.queue = ::core::option::Option::None;
                    <hello as ::taskflow::__private::StepDef>::build(
                        "hello",
                        params,
                        options,
                    )
                },
            ])
        }
    }
    #[automatically_derived]
    impl Example {
        /// Starts a task of this flow: set its index, creator and params, then `build()` it.
        #[allow(dead_code)]
        pub fn builder() -> ::taskflow::TaskBuilder<'static> {
            ::taskflow::TaskBuilder::new(&Example)
        }
    }
    ::taskflow::__private::inventory::submit! {
        ::taskflow::__private::FlowRegistration { flow : & Example, origin :
        ::taskflow::__private::Origin { module : ::core::module_path!(), file :
        ::core::file!(), line : ::core::line!(), }, }
    }
};
