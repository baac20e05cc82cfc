use taskflow::prelude::*;

#[step]
async fn hello(greeting: String) -> Result<(), StepError> {
    let _ = greeting;
    Ok(())
}

task_flow! {
    flow Example {
        steps {
            hello(greeting = "{{ input.name }} from {{ task.owner }}"),
        }
    }
}

fn main() {}
