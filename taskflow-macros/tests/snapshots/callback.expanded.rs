async fn notify(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    Ok(())
}
#[doc(hidden)]
#[allow(non_camel_case_types)]
struct notify {}
#[doc(hidden)]
#[allow(non_local_definitions, clippy::all)]
const _: () = {
    #[automatically_derived]
    impl ::taskflow::Callback for notify {
        fn name(&self) -> &str {
            <Self as ::taskflow::__private::CallbackDef>::NAME
        }
        fn call<'life0, 'life1, 'async_trait>(
            &'life0 self,
            outcome: &'life1 ::taskflow::TaskOutcome,
        ) -> ::taskflow::__private::BoxFuture<
            'async_trait,
            ::core::result::Result<(), ::taskflow::CallbackError>,
        >
        where
            'life0: 'async_trait,
            'life1: 'async_trait,
            Self: 'async_trait,
        {
            ::std::boxed::Box::pin(async move {
                let result = notify(
                        <TaskOutcome as ::taskflow::__private::IsTaskOutcome>::from_outcome(
                            outcome,
                        ),
                    )
                    .await;
                <Result<
                    (),
                    CallbackError,
                > as ::taskflow::__private::CallbackReturn>::into_result(result)
            })
        }
    }
    #[diagnostic::do_not_recommend]
    impl ::taskflow::__private::CallbackDef for notify {
        const NAME: &'static str = "notify.ops";
    }
    ::taskflow::__private::inventory::submit! {
        ::taskflow::__private::CallbackRegistration { callback : & notify {}, origin :
        ::taskflow::__private::Origin { module : ::core::module_path!(), file :
        ::core::file!(), line : ::core::line!(), }, }
    }
};
