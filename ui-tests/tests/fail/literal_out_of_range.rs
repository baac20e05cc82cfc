use taskflow::prelude::*;

#[step]
async fn wait(times: u8) -> Result<(), StepError> {
    let _ = times;
    Ok(())
}

task_flow! {
    flow Example {
        steps { wait(times = 300) }
    }
}

fn main() {}
