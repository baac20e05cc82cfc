use taskflow::prelude::*;

#[step]
async fn hello(greeting: String) -> Result<(), StepError> {
    let _ = greeting;
    Ok(())
}

task_flow! {
    flow Example {
        steps { hello(greeting = "sum is {{ common.sumC ") }
    }
}

fn main() {}
