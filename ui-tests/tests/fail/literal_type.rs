use taskflow::prelude::*;

#[step]
async fn greet(greeting: String, times: u8, loud: bool, ratio: Option<f64>, offset: u32) -> Result<(), StepError> {
    let _ = (greeting, times, loud, ratio, offset);
    Ok(())
}

task_flow! {
    flow Example {
        steps { greet(greeting = 5, times = true, loud = 1.5, ratio = false, offset = -1) }
    }
}

fn main() {}
