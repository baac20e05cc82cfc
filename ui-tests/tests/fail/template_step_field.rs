use taskflow::prelude::*;

#[step]
async fn hello(greeting: String) -> Result<String, StepError> {
    Ok(greeting)
}

task_flow! {
    flow Example {
        steps {
            hello,
            hello(greeting = "{{ steps.hello.outptu }}") [name = "second"],
        }
    }
}

fn main() {}
