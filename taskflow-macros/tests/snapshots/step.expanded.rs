/// Adds two numbers.
pub async fn sum(
    ctx: &StepContext,
    sum_a: i64,
    sum_b: Option<i64>,
) -> Result<i64, StepError> {
    Ok(sum_a + sum_b.unwrap_or(0))
}
#[doc(hidden)]
#[allow(non_camel_case_types)]
pub struct sum {}
#[doc(hidden)]
#[allow(non_local_definitions, clippy::all)]
const _: () = {
    #[automatically_derived]
    impl ::taskflow::StepMgr for sum {
        fn name(&self) -> &str {
            <Self as ::taskflow::__private::StepDef>::NAME
        }
        fn options(&self) -> ::taskflow::StepOptions {
            #[allow(unused_mut)]
            let mut options = <::taskflow::StepOptions as ::core::default::Default>::default();
            options.max_execution_seconds = 10u32;
            options.max_retries = 2u32;
            options.node = ::core::option::Option::Some(
                ::std::string::String::from("node-a"),
            );
            options.queue = ::core::option::Option::None;
            options
        }
        fn run<'life0, 'life1, 'async_trait>(
            &'life0 self,
            ctx: &'life1 ::taskflow::StepContext,
        ) -> ::taskflow::__private::BoxFuture<
            'async_trait,
            ::core::result::Result<
                ::taskflow::__private::serde_json::Value,
                ::taskflow::StepError,
            >,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin(async move {
                let step = ctx.step_name();
                let arg0 = <i64 as ::taskflow::__private::StepParam>::decode(
                    step,
                    "sumA",
                    ctx.param("sumA"),
                )?;
                let arg1 = <Option<
                    i64,
                > as ::taskflow::__private::StepParam>::decode(
                    step,
                    "sumB",
                    ctx.param("sumB"),
                )?;
                let result = sum(
                        <StepContext as ::taskflow::__private::IsStepContext>::from_context(
                            ctx,
                        ),
                        arg0,
                        arg1,
                    )
                    .await;
                <Result<
                    i64,
                    StepError,
                > as ::taskflow::__private::StepReturn>::into_output(result, step)
            })
        }
    }
    #[diagnostic::do_not_recommend]
    impl ::taskflow::__private::StepDef for sum {
        const NAME: &'static str = "sum";
        const INSTANCE: Self = sum {};
        const ARGS: &'static [::taskflow::__private::ArgInfo] = &[
            ::taskflow::__private::ArgInfo {
                id: 8571778031903556924u64,
                required: true,
                missing: "missing argument `sum_a` of step `sum`",
            },
            ::taskflow::__private::ArgInfo {
                id: 8571781330438441557u64,
                required: false,
                missing: "missing argument `sum_b` of step `sum`",
            },
        ];
    }
    #[diagnostic::do_not_recommend]
    impl ::taskflow::__private::HasArg<8571778031903556924u64> for sum {
        type Type = i64;
        const KEY: &'static str = "sumA";
    }
    #[diagnostic::do_not_recommend]
    impl ::taskflow::__private::HasArg<8571781330438441557u64> for sum {
        type Type = Option<i64>;
        const KEY: &'static str = "sumB";
    }
    ::taskflow::__private::inventory::submit! {
        ::taskflow::__private::StepRegistration { step : & sum {}, origin :
        ::taskflow::__private::Origin { module : ::core::module_path!(), file :
        ::core::file!(), line : ::core::line!(), }, }
    }
};
