use taskflow::prelude::*;

#[step]
async fn hello(greeting: String) -> Result<String, StepError> {
    Ok(greeting)
}

task_flow! {
    flow Example {
        steps {
            hello(greeting = "{{ steps.second.output }}"),
            hello(greeting = "{{ steps.hello.output }}, {{ steps.third.output }}") [name = "second"],
        }
    }
}

fn main() {}
